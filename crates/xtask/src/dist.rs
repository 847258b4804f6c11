//! `cargo xtask dist`: the release binaries for this platform in a tarball, with their checksums, the deployment
//! files and a short INSTALL. `tar` and `sha256sum` (GNU, on every Linux this targets) do the packing and hashing,
//! which keeps xtask free of dependencies.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// What a release installs: the CLI (`cone` and `cone-cli`, side by side), the server and the connector's own
/// command line.
pub const BINARIES: [&str; 4] = ["cone", "cone-cli", "cone-server", "cone-aws"];

/// The repository files that go into the tarball as they are.
const FILES: [&str; 5] = ["README.md", "LICENSE", "docs/operations.md", "deploy/systemd", "deploy/kubernetes"];

/// Packs the binaries found in `bin_dir` into `out/cone-VERSION-TRIPLE.tar.gz` and writes its `.sha256` beside it;
/// returns the tarball's path.
pub fn package(root: &Path, bin_dir: &Path, out: &Path, version: &str, triple: &str) -> Result<PathBuf, String> {
    let name = format!("cone-{version}-{triple}");
    let stage = out.join(&name);
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| io("cannot clear the staging directory", e))?;
    }
    std::fs::create_dir_all(stage.join("bin")).map_err(|e| io("cannot create the staging directory", e))?;
    for bin in BINARIES {
        let from = bin_dir.join(bin);
        std::fs::copy(&from, stage.join("bin").join(bin))
            .map_err(|e| io(&format!("cannot copy {} (was it built?)", from.display()), e))?;
    }
    for file in FILES {
        let to = stage.join(file);
        std::fs::create_dir_all(to.parent().unwrap_or(&stage)).map_err(|e| io("cannot create a directory", e))?;
        let mut cp = Command::new("cp");
        cp.arg("-R").arg(root.join(file)).arg(&to);
        run(cp, &format!("cp {file}"))?;
    }
    std::fs::write(stage.join("INSTALL"), install_text(version, triple)).map_err(|e| io("cannot write INSTALL", e))?;
    let mut sums = Command::new("sh");
    sums.args(["-c", "sha256sum bin/* INSTALL > SHA256SUMS"]).current_dir(&stage);
    run(sums, "sha256sum")?;

    let tarball = out.join(format!("{name}.tar.gz"));
    let mut tar = Command::new("tar");
    // The same files give the same archive: sorted names, one owner, time zero.
    tar.args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-czf"])
        .arg(&tarball)
        .arg("-C")
        .arg(out)
        .arg(&name);
    run(tar, "tar")?;
    std::fs::remove_dir_all(&stage).map_err(|e| io("cannot remove the staging directory", e))?;
    let mut sum = Command::new("sh");
    sum.args(["-c", &format!("sha256sum {name}.tar.gz > {name}.tar.gz.sha256")]).current_dir(out);
    run(sum, "sha256sum")?;
    Ok(tarball)
}

fn install_text(version: &str, triple: &str) -> String {
    format!(
        "Cone {version} for {triple}

Check the files:   sha256sum -c SHA256SUMS
Install them:      sudo install -m 0755 bin/* /usr/local/bin/

`cone` and `cone-cli` go side by side in one directory: `cone` answers the AWS CLI's cached credential
requests itself and runs the `cone-cli` beside it for everything else.

The server:        cone-server config check --config /etc/cone/cone-server.yaml
                   then deploy/systemd/cone-server.service, or `kubectl apply -k deploy/kubernetes`
The AWS connector: cone-aws --help (its own command line: sync, provision, the IAM policy it needs)

docs/operations.md covers installing, running, backing up and upgrading; README.md the rest.
"
    )
}

/// This toolchain's host platform, as `rustc -vV` names it.
pub fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc").arg("-vV").output().map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .ok_or_else(|| "rustc -vV names no host platform".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's build directory (`target/debug`), where `cargo build --workspace --bins` put the binaries.
    fn debug_dir() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().to_path_buf()
    }

    fn sh(dir: &Path, script: &str) -> String {
        let o = Command::new("sh").args(["-c", script]).current_dir(dir).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{script}: {said}");
        said
    }

    #[test]
    fn the_tarball_holds_working_binaries_with_checksums_and_an_install_note() {
        let out = tempfile_dir();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let version = env!("CARGO_PKG_VERSION");
        let tarball = package(&root, &debug_dir(), &out, version, "test-platform").unwrap();
        let name = format!("cone-{version}-test-platform");
        assert_eq!(tarball, out.join(format!("{name}.tar.gz")));
        assert!(sh(&out, &format!("sha256sum -c {name}.tar.gz.sha256")).contains(": OK"));
        sh(&out, &format!("tar -xzf {name}.tar.gz"));
        let unpacked = out.join(&name);
        let checked = sh(&unpacked, "sha256sum -c SHA256SUMS");
        for bin in BINARIES {
            assert!(checked.contains(&format!("bin/{bin}: OK")), "{checked}");
        }
        assert!(sh(&unpacked, "bin/cone-server --version").contains(version));
        assert!(sh(&unpacked, "cat INSTALL").contains("`cone` and `cone-cli` go side by side"));
        for file in ["README.md", "LICENSE", "docs/operations.md", "deploy/systemd/cone-server.service"] {
            assert!(unpacked.join(file).is_file(), "{file} is missing");
        }
        assert!(unpacked.join("deploy/kubernetes/kustomization.yaml").is_file());
        // Packed twice, the same bytes.
        let first = std::fs::read(&tarball).unwrap();
        std::fs::remove_dir_all(&unpacked).unwrap();
        package(&root, &debug_dir(), &out, version, "test-platform").unwrap();
        assert!(std::fs::read(&tarball).unwrap() == first, "packing is not reproducible");
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// A fresh directory under the system's temporary one (xtask has no dependencies, so no `tempfile`).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cone-dist-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
