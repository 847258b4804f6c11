//! What `deploy/` ships: the Kubernetes manifests valid against the Kubernetes schemas (`kubernetes-validate`, from
//! the .venv), consistent with each other, and carrying a configuration `cone-server config check` accepts; the
//! systemd unit clean under `systemd-analyze verify`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn deploy(path: &str) -> PathBuf {
    cone_testkit::workspace_root().join("deploy").join(path)
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The oldest Kubernetes release still supported upstream and the newest the validator knows.
const KUBERNETES: [&str; 2] = ["1.29.0", "1.37.0"];

#[test]
fn the_kubernetes_manifests_validate_and_carry_a_configuration_that_checks() {
    let dir = deploy("kubernetes");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "kustomization.yaml")
        .collect();
    files.sort();
    let kustomization = yaml(&dir.join("kustomization.yaml"));
    let mut listed: Vec<String> =
        kustomization["resources"].as_sequence().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    listed.sort();
    assert_eq!(listed, files, "kustomization.yaml lists every manifest, and only those");

    let validator = cone_testkit::venv_bin("kubernetes-validate").unwrap();
    for version in KUBERNETES {
        let o =
            Command::new(&validator).args(["--strict", "-k", version]).args(&files).current_dir(&dir).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "Kubernetes {version}:\n{said}");
        assert_eq!(said.matches(" passed for resource ").count(), files.len(), "Kubernetes {version}:\n{said}");
        assert!(!said.contains("WARN"), "Kubernetes {version}:\n{said}");
    }

    // The container reads the ConfigMap's file where the Deployment mounts it, and the password where the
    // configuration says.
    let deployment = yaml(&dir.join("server-deployment.yaml"));
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mount = |volume: &str| {
        let m = container["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["name"] == volume).unwrap();
        PathBuf::from(m["mountPath"].as_str().unwrap())
    };
    let source = |volume: &str| pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == volume).unwrap();
    assert_eq!(source("config")["configMap"]["name"], "cone-server");
    assert_eq!(source("database")["secret"]["secretName"], "cone-database");
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.windows(2).any(|w| w == ["--config", mount("config").join("cone-server.yaml").to_str().unwrap()]));
    let config = yaml(&dir.join("server-configmap.yaml"))["data"]["cone-server.yaml"].as_str().unwrap().to_string();
    let secret = yaml(&dir.join("database-secret.yaml"));
    let password_file = mount("database").join("password");
    assert!(config.contains(&format!("database_password_file: {}\n", password_file.display())), "{config}");

    let tmp = tempfile::tempdir().unwrap();
    let check = |password: &str| {
        let file = tmp.path().join("password");
        std::fs::write(&file, password).unwrap();
        let local = tmp.path().join("cone-server.yaml");
        std::fs::write(&local, config.replace(password_file.to_str().unwrap(), file.to_str().unwrap())).unwrap();
        Command::new(cone_testkit::target_bin("cone-server").unwrap())
            .args(["config", "check", "--config"])
            .arg(&local)
            .output()
            .unwrap()
    };
    // As shipped, the Secret is empty, and the server says so rather than starting without a password.
    let empty = check(secret["stringData"]["password"].as_str().unwrap());
    assert!(!empty.status.success());
    let said = String::from_utf8_lossy(&empty.stderr);
    assert!(said.contains("database: its secret has 0 bytes"), "{said}");
    let filled = check("a-password\n");
    let said = String::from_utf8_lossy(&filled.stdout);
    assert!(filled.status.success(), "{said}{}", String::from_utf8_lossy(&filled.stderr));
    assert!(said.contains("Store: the PostgreSQL database cone on cone-postgres:5432 as cone."), "{said}");
}

#[test]
fn the_systemd_unit_verifies_clean() {
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!(
            "SKIP the_systemd_unit_verifies_clean: systemd-analyze is not installed (cargo xtask test installs it)"
        );
        return;
    };
    let unit = std::fs::read_to_string(deploy("systemd/cone-server.service")).unwrap();
    let server = cone_testkit::target_bin("cone-server").unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/cone-server serve --config /etc/cone/cone-server.yaml\n"));
    // Where this build's binary is, so that systemd finds the command it would run.
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("cone-server.service");
    std::fs::write(&local, unit.replace("/usr/local/bin/cone-server", server.to_str().unwrap())).unwrap();
    let o = Command::new(analyze).arg("verify").arg(&local).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{said}");
    // Unknown keys and bad values are only warned of: none may be.
    assert_eq!(said, "", "systemd-analyze verify warns");
    for setting in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"] {
        assert!(unit.contains(setting), "the unit lacks {setting}");
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
