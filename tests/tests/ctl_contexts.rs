//! `gatehousectl config …` contexts and id completion, as an operator with a home of their own
//! uses them: no connection flags once a context is current, flags and variables still win, the
//! config file kept private, and `<TAB>` offering the ids the control plane holds.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::anyhow;
use gatehouse_tests::process::{Access, ControlPlane, CtlOutput, binary};
use tokio::process::Command;

/// An operator: HOME and XDG_CONFIG_HOME in a folder of their own, working in an empty folder
/// (so no gatehouse-data/ of a local control plane is found), and no GATEHOUSE_CTL_* variable
/// from the environment the tests run in.
struct Operator {
    dir: tempfile::TempDir,
}

impl Operator {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("home"))?;
        std::fs::create_dir_all(dir.path().join("work"))?;
        Ok(Self { dir })
    }

    /// The working directory; the test's control plane keeps its data under it, in cp/.
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Where gatehousectl keeps contexts for this operator: $XDG_CONFIG_HOME/gatehouse/.
    fn config_file(&self) -> PathBuf {
        self.dir.path().join("xdg/gatehouse/config.toml")
    }

    fn command(&self, program: &Path, envs: &[(&str, &str)]) -> Command {
        let mut command = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("GATEHOUSE_CTL_") {
                command.env_remove(&name);
            }
        }
        command
            .current_dir(self.work())
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `gatehousectl ARGS` with nothing but `envs` added.
    async fn ctl(&self, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<CtlOutput> {
        let mut command = self.command(&binary("gatehousectl")?, envs);
        command.args(args);
        run(command, args).await
    }

    /// `gatehousectl ARGS`, which must succeed.
    async fn ok(&self, args: &[&str]) -> anyhow::Result<CtlOutput> {
        let out = self.ctl(args, &[]).await?;
        anyhow::ensure!(out.success, "gatehousectl {args:?} failed: {}", out.stderr);
        Ok(out)
    }

    /// `gatehousectl ARGS` with `envs`, which must fail; its error.
    async fn refused(&self, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<String> {
        let out = self.ctl(args, envs).await?;
        anyhow::ensure!(!out.success, "gatehousectl {args:?} should fail: {}", out.stdout);
        Ok(out.stderr)
    }
}

async fn run(command: Command, what: &[&str]) -> anyhow::Result<CtlOutput> {
    let mut command = command;
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .map_err(|_| anyhow!("{what:?} did not finish"))??;
    Ok(CtlOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn mode(path: &Path) -> anyhow::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn json(out: &CtlOutput) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(&out.stdout).map_err(|e| anyhow!("not JSON ({e}): {}", out.stdout))
}

/// The ids of `api list -o json`.
fn api_ids(out: &CtlOutput) -> anyhow::Result<Vec<String>> {
    let list = json(out)?;
    Ok(list.as_array().into_iter().flatten().filter_map(|api| api["id"].as_str().map(str::to_string)).collect())
}

/// A port nothing listens on: bound, noted, released.
fn dead_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A control plane (TLS from its own CA, operator token file) with its data in the operator's
/// working directory, so that the context can name its files by relative paths.
async fn control_plane(operator: &Operator) -> anyhow::Result<(ControlPlane, Access)> {
    let cp = ControlPlane::start(&operator.work().join("cp")).await?;
    let access = cp.access();
    assert!(access.ca_file.is_some(), "the control plane serves TLS from its own CA");
    Ok((cp, access))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_current_context_needs_no_connection_flags() -> anyhow::Result<()> {
    let operator = Operator::new()?;
    let (_cp, access) = control_plane(&operator).await?;

    // Relative paths, as typed in the folder the control plane was started in.
    let out = operator
        .ok(&[
            "config",
            "set-context",
            "lab",
            "--server",
            &access.url,
            "--ca-file",
            "cp/tls/ca.pem",
            "--token-file",
            "cp/operator.token",
        ])
        .await?;
    assert!(out.stdout.contains("context lab created"), "{}", out.stdout);

    // Private, and stored absolute, naming the token file but never holding the token.
    let file = operator.config_file();
    assert_eq!(mode(&file)?, 0o600);
    assert_eq!(mode(file.parent().unwrap())?, 0o700);
    let text = std::fs::read_to_string(&file)?;
    let work = operator.work().display().to_string();
    assert!(text.contains(&format!("ca-file = \"{work}/cp/tls/ca.pem\"")), "{text}");
    assert!(text.contains(&format!("token-file = \"{work}/cp/operator.token\"")), "{text}");
    assert!(!text.contains(&access.operator_token()?), "the token itself is never stored: {text}");

    // A second context, for a control plane that is not there.
    let nowhere = format!("https://127.0.0.1:{}", dead_port()?);
    operator.ok(&["config", "set-context", "gone", "--server", &nowhere]).await?;
    let error = operator.refused(&["config", "current-context"], &[]).await?;
    assert!(error.contains("no context is current"), "{error}");

    let out = operator.ok(&["config", "use-context", "lab"]).await?;
    assert!(out.stdout.contains("switched to context lab"), "{}", out.stdout);
    assert_eq!(mode(&file)?, 0o600, "still private after a rewrite");
    assert_eq!(operator.ok(&["config", "current-context"]).await?.stdout.trim(), "lab");

    // No --server, --ca-file or --token-file: the context says them all.
    operator.ok(&["api", "put", "orders", "--path", "/orders", "--service-url", "https://orders.internal"]).await?;
    let out = operator.ok(&["api", "list", "-o", "json"]).await?;
    assert_eq!(api_ids(&out)?, ["orders"]);

    // get-contexts marks the current one.
    let out = operator.ok(&["config", "get-contexts"]).await?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("CURRENT") && lines[0].contains("NAME"), "{}", out.stdout);
    let row = |name: &str| lines.iter().find(|l| l.split_whitespace().any(|w| w == name)).copied().unwrap_or("");
    assert!(row("lab").starts_with('*') && row("lab").contains(&access.url), "{}", out.stdout);
    assert!(!row("gone").starts_with('*') && row("gone").contains(&nowhere), "{}", out.stdout);
    let listed = json(&operator.ok(&["config", "get-contexts", "-o", "json"]).await?)?;
    let current: Vec<&str> =
        listed.as_array().unwrap().iter().filter(|c| c["current"] == true).filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(current, ["lab"]);

    // --context (or its variable) picks another for one command.
    let error = operator.refused(&["--context", "gone", "api", "list"], &[]).await?;
    assert!(error.contains("cannot reach the control plane") && error.contains(&nowhere), "{error}");
    let error = operator.refused(&["api", "list"], &[("GATEHOUSE_CTL_CONTEXT", "gone")]).await?;
    assert!(error.contains(&nowhere), "{error}");
    let error = operator.refused(&["--context", "nope", "api", "list"], &[]).await?;
    assert!(error.contains("no context 'nope'") && error.contains("gone, lab"), "{error}");

    // Deleting the current context leaves none current.
    operator.ok(&["config", "delete-context", "lab"]).await?;
    let error = operator.refused(&["config", "current-context"], &[]).await?;
    assert!(error.contains("no context is current"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_and_variables_override_the_context_field_by_field() -> anyhow::Result<()> {
    let operator = Operator::new()?;
    let (_cp, access) = control_plane(&operator).await?;
    let ca = access.ca_file.clone().unwrap();
    let token = access.operator_token_file.clone().unwrap();
    // Right CA and token, wrong server.
    let nowhere = format!("https://127.0.0.1:{}", dead_port()?);
    let (ca_text, token_text) = (ca.to_str().unwrap(), token.to_str().unwrap());
    operator
        .ok(&["config", "set-context", "lab", "--server", &nowhere, "--ca-file", ca_text, "--token-file", token_text])
        .await?;
    operator.ok(&["config", "use-context", "lab"]).await?;
    let error = operator.refused(&["api", "list"], &[]).await?;
    assert!(error.contains("cannot reach the control plane") && error.contains(&nowhere), "{error}");

    // The flag replaces the server; the CA and the token still come from the context.
    let out = operator.ctl(&["--server", &access.url, "api", "list", "-o", "json"], &[]).await?;
    assert!(out.success, "{}", out.stderr);
    // So does the variable.
    let out = operator.ctl(&["api", "list", "-o", "json"], &[("GATEHOUSE_CTL_SERVER", &access.url)]).await?;
    assert!(out.success, "{}", out.stderr);

    // A token file given by flag wins over the context's.
    let wrong = operator.work().join("wrong.token");
    std::fs::write(&wrong, "not-a-token")?;
    let error = operator
        .refused(&["--server", &access.url, "--token-file", wrong.to_str().unwrap(), "api", "list"], &[])
        .await?;
    assert!(error.contains("not authenticated"), "{error}");

    // set-context takes only what was typed: a GATEHOUSE_CTL_SERVER in the shell is not
    // written into a context.
    let error = operator
        .refused(&["config", "set-context", "new", "--ca-file", ca_text], &[("GATEHOUSE_CTL_SERVER", &access.url)])
        .await?;
    assert!(error.contains("give its control plane with --server"), "{error}");
    let out = operator
        .ctl(&["config", "set-context", "lab", "--ca-file", ca_text], &[("GATEHOUSE_CTL_SERVER", &access.url)])
        .await?;
    assert!(out.success, "{}", out.stderr);
    let text = std::fs::read_to_string(operator.config_file())?;
    assert!(text.contains(&nowhere) && !text.contains(&access.url), "{text}");

    // Updating only the server keeps the rest; now no flag is needed.
    operator.ok(&["config", "set-context", "lab", "--server", &access.url]).await?;
    operator.ok(&["api", "list"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_others_may_read_is_refused_and_a_missing_token_file_names_the_context() -> anyhow::Result<()> {
    let operator = Operator::new()?;
    let (_cp, access) = control_plane(&operator).await?;
    // The context's own copy of the token, so that it can go missing.
    let token = operator.work().join("lab.token");
    std::fs::write(&token, access.operator_token()?)?;
    let ca = access.ca_file.clone().unwrap();
    operator
        .ok(&[
            "config",
            "set-context",
            "lab",
            "--server",
            &access.url,
            "--ca-file",
            ca.to_str().unwrap(),
            "--token-file",
            "lab.token",
        ])
        .await?;
    operator.ok(&["config", "use-context", "lab"]).await?;
    operator.ok(&["api", "list"]).await?;

    let file = operator.config_file();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
    for args in
        [&["api", "list"][..], &["config", "get-contexts"], &["config", "set-context", "x", "--server", &access.url]]
    {
        let error = operator.refused(args, &[]).await?;
        assert!(
            error.contains("permissions 0644") && error.contains(&format!("chmod 600 {}", file.display())),
            "{error}"
        );
        assert_eq!(error.trim().lines().count(), 1, "{error}");
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    operator.ok(&["api", "list"]).await?;

    std::fs::remove_file(&token)?;
    let error = operator.refused(&["api", "list"], &[]).await?;
    assert!(error.contains("context 'lab'") && error.contains(&token.display().to_string()), "{error}");
    // The token itself, from the environment, still wins over the context's file.
    let out = operator.ctl(&["api", "list"], &[("GATEHOUSE_CTL_TOKEN", &access.operator_token()?)]).await?;
    assert!(out.success, "{}", out.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_are_completed_from_the_current_contexts_control_plane() -> anyhow::Result<()> {
    let operator = Operator::new()?;
    let (_cp, access) = control_plane(&operator).await?;
    let (ca, token) = (access.ca_file.clone().unwrap(), access.operator_token_file.clone().unwrap());
    operator
        .ok(&[
            "config",
            "set-context",
            "lab",
            "--server",
            &access.url,
            "--ca-file",
            ca.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ])
        .await?;
    operator.ok(&["config", "use-context", "lab"]).await?;
    for (api, path) in [("orders", "/orders"), ("billing", "/billing")] {
        operator.ok(&["api", "put", api, "--path", path, "--service-url", "https://backend.internal"]).await?;
    }

    let out = operator.ok(&["__complete", "api"]).await?;
    assert_eq!(out.stdout, "billing\norders\n");
    assert_eq!(operator.ok(&["__complete", "context"]).await?.stdout, "lab\n");
    // Nothing, quietly and at once, when the control plane is not there.
    let nowhere = format!("https://127.0.0.1:{}", dead_port()?);
    let out = operator.ok(&["--server", &nowhere, "__complete", "api"]).await?;
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));

    // bash: the script registers the hook, and <TAB> after `api show` offers the API ids.
    let ctl = binary("gatehousectl")?;
    let script = operator.work().join("gatehousectl.bash");
    std::fs::write(&script, operator.ok(&["completions", "bash"]).await?.stdout)?;
    let simulation = format!(
        r#"source {script}
complete -p gatehousectl
complete_line() {{
    COMP_LINE="$1"; COMP_POINT=${{#COMP_LINE}}
    read -r -a COMP_WORDS <<< "$COMP_LINE"; COMP_WORDS+=("$2")
    COMP_LINE+="$2"; COMP_POINT=${{#COMP_LINE}}; COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
    COMPREPLY=()
    _gatehousectl_with_ids "${{COMP_WORDS[0]}}" "$2" "${{COMP_WORDS[COMP_CWORD-1]}}"
    echo "$1$2 -> ${{COMPREPLY[*]}}"
}}
complete_line '{ctl} api show ' ''
complete_line '{ctl} api show ' 'o'
complete_line '{ctl} -o json api delete ' ''
complete_line '{ctl} api show orders ' ''
complete_line '{ctl} config use-context ' ''
"#,
        script = script.display(),
        ctl = ctl.display(),
    );
    let mut bash = operator.command(Path::new("bash"), &[]);
    bash.args(["--norc", "--noprofile", "-c", &simulation]);
    let out = run(bash, &["bash"]).await?;
    assert!(out.success, "{}", out.stderr);
    let ctl = ctl.display().to_string();
    let lines: Vec<String> = out.stdout.lines().map(|l| l.replace(&ctl, "gatehousectl")).collect();
    assert!(lines[0].starts_with("complete ") && lines[0].contains("-F _gatehousectl_with_ids"), "{lines:?}");
    assert_eq!(lines[1], "gatehousectl api show  -> billing orders");
    assert_eq!(lines[2], "gatehousectl api show o -> orders");
    assert_eq!(lines[3], "gatehousectl -o json api delete  -> billing orders");
    // After the id: flags (from clap's own script), no more ids.
    assert!(lines[4].contains("--help") && !lines[4].contains("billing"), "{lines:?}");
    assert_eq!(lines[5], "gatehousectl config use-context  -> lab");
    Ok(())
}
