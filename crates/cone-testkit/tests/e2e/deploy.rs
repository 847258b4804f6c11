//! What `deploy/` ships: the Kubernetes manifests valid against the Kubernetes schemas (`kubernetes-validate`, from
//! the .venv), consistent with each other, carrying a configuration `cone-server config check` accepts and only
//! settings `cone-aws serve` takes; the systemd units clean under `systemd-analyze verify`.

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
    assert!(said.contains("AWS: through the external connector (cone-aws serve)"), "{said}");

    // Every variable the connector is given, set or shown commented out, is one `cone-aws serve` reads.
    let help = Command::new(cone_testkit::target_bin("cone-aws").unwrap()).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let connector = yaml(&dir.join("connector-deployment.yaml"));
    let env = &connector["spec"]["template"]["spec"]["containers"][0]["env"];
    let mut names: Vec<String> =
        env.as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    let secret = std::fs::read_to_string(dir.join("connector-secret.yaml")).unwrap();
    names.extend(secret.lines().filter_map(|l| {
        let l = l.trim().trim_start_matches("# ");
        l.starts_with("BATON_").then(|| l.split(':').next().unwrap_or_default().to_string())
    }));
    for name in names.iter().filter(|n| !n.starts_with("AWS_") && *n != "RUST_LOG") {
        assert!(help.contains(&format!("[env: {name}")), "cone-aws serve does not read {name}:\n{help}");
    }
    assert!(names.iter().any(|n| n == "BATON_SCIM_TOKEN") && names.iter().any(|n| n == "BATON_CLIENT_SECRET"));
}

#[test]
fn the_systemd_units_verify_clean() {
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!(
            "SKIP the_systemd_units_verify_clean: systemd-analyze is not installed (cargo xtask test installs it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for (unit, binary, start) in [
        ("cone-server.service", "cone-server", "serve --config /etc/cone/cone-server.yaml"),
        ("cone-connector.service", "cone-aws", "serve"),
    ] {
        let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
        let installed = format!("/usr/local/bin/{binary}");
        assert!(text.contains(&format!("ExecStart={installed} {start}\n")), "{unit}");
        // Where this build's binary is, so that systemd finds the command it would run; and an environment file.
        let local = tmp.path().join(unit);
        let env = tmp.path().join("connector.env");
        std::fs::write(&env, "").unwrap();
        let text_here = text
            .replace(&installed, cone_testkit::target_bin(binary).unwrap().to_str().unwrap())
            .replace("/etc/cone/connector.env", env.to_str().unwrap());
        std::fs::write(&local, text_here).unwrap();
        let o = Command::new(&analyze).arg("verify").arg(&local).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{unit}: {said}");
        // Unknown keys and bad values are only warned of: none may be.
        assert_eq!(said, "", "systemd-analyze verify warns about {unit}");
        for setting in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"] {
            assert!(text.contains(setting), "{unit} lacks {setting}");
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
