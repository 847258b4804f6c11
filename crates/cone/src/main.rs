//! `cone`: answers a `credential_process` call from the cache in about the time it takes to read one file, and
//! hands every other command, and every cache miss, to `cone-cli` installed beside it.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use cone::settings::DEFAULT_PROFILE;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some((profile, name)) = credential_request(&args, std::env::var("CONE_PROFILE").ok())
        // Anything unusual (a missing profile, a damaged file) is left to cone-cli, which explains it.
        && let Ok(Some(json)) = cone::cached_process_output(&profile, &name)
        && writeln!(std::io::stdout().lock(), "{json}").is_ok()
    {
        return ExitCode::SUCCESS;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cone cannot tell where it is installed ({e}); run cone-cli directly");
            return ExitCode::FAILURE;
        }
    };
    let cli = exe.with_file_name("cone-cli");
    // The profiles `cone aws setup` writes must name this program, not cone-cli.
    let err = std::process::Command::new(&cli).args(&args).env("CONE_EXE", &exe).exec();
    eprintln!("cannot start {} ({err}); install cone-cli in the same directory as cone", cli.display());
    ExitCode::FAILURE
}

/// `[-p NAME | --profile NAME | --profile=NAME] aws credentials AWS_PROFILE`, the shape of the lines
/// `cone aws setup` writes: the cone profile and the AWS profile.
fn credential_request(args: &[OsString], env_profile: Option<String>) -> Option<(String, String)> {
    let args: Vec<&str> = args.iter().map(|a| a.to_str()).collect::<Option<_>>()?;
    let (profile, rest) = match args.as_slice() {
        ["-p" | "--profile", p, rest @ ..] => (p.to_string(), rest),
        [flag, rest @ ..] if flag.starts_with("--profile=") => (flag["--profile=".len()..].to_string(), rest),
        rest => (env_profile.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_PROFILE.to_string()), rest),
    };
    match rest {
        ["aws", "credentials", name] => Some((profile, name.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str], env: Option<&str>) -> Option<(String, String)> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        credential_request(&args, env.map(String::from))
    }

    #[test]
    fn recognises_only_credential_process_lines() {
        let pair = |p: &str, n: &str| Some((p.to_string(), n.to_string()));
        assert_eq!(req(&["aws", "credentials", "dev"], None), pair("default", "dev"));
        assert_eq!(req(&["aws", "credentials", "dev"], Some("work")), pair("work", "dev"));
        assert_eq!(req(&["-p", "work", "aws", "credentials", "w-dev"], None), pair("work", "w-dev"));
        assert_eq!(req(&["--profile=work", "aws", "credentials", "w-dev"], None), pair("work", "w-dev"));
        assert_eq!(req(&["aws", "credentials"], None), None);
        assert_eq!(req(&["aws", "credentials", "dev", "-o", "json"], None), None);
        assert_eq!(req(&["get", "dev"], None), None);
    }
}
