//! Named values end to end, through the real binaries: an operator puts values with
//! `gatehousectl nv`, an API's policy names them as `{{name}}` in its Basic credentials and in a
//! header, and the echo backend reports the headers the data plane sent. A changed value reaches
//! the very next request once `--wait` returns; a secret one is never shown again, nor kept in
//! clear on disk or in a log. A value linked to a file (Vault Agent, a Kubernetes Secret) follows
//! the file, and a broken or missing file keeps the last good value.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use gatehouse_proto::v1 as pb;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::http_client::{HttpClient, sample};
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{Access, ControlPlane, CtlOutput, DataPlane, ctl};
use gatehouse_tests::requests::upload;
use http_body_util::Full;
use hyper::StatusCode;
use tonic::Code;
use tonic_types::StatusExt as _;

const WAIT: [&str; 3] = ["--wait", "--timeout", "15s"];

/// Basic credentials and a bearer token from named values; the client certificate the API's
/// backend requires (the policy holds the API's whole backend identity).
const POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <authentication-certificate certificate-id="client" />
    <authentication-basic username="{{backend-user}}" password="{{backend-pw}}" />
    <set-header name="X-Service-Token" exists-action="override">
      <value>Bearer {{token}}</value>
    </set-header>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

/// `gatehousectl --wait ARGS`, which must succeed.
async fn write(access: &Access, args: &[&str], stdin: Option<&str>) -> anyhow::Result<CtlOutput> {
    let out = ctl(access, &[&WAIT[..], args].concat(), stdin).await?;
    assert!(out.success, "{args:?}: {}", out.stderr);
    Ok(out)
}

/// `gatehousectl ARGS`, which must fail with one line on stderr; returns that line.
async fn refused(access: &Access, args: &[&str]) -> anyhow::Result<String> {
    let out = ctl(access, args, None).await?;
    assert!(!out.success, "{args:?} succeeded: {}", out.stdout);
    let line = out.stderr.trim_end();
    assert!(line.starts_with("gatehousectl: ") && !line.contains('\n'), "{args:?}: {line}");
    Ok(line.to_string())
}

fn json(out: &CtlOutput) -> serde_json::Value {
    assert!(out.success, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// Writes `text` to DIR/NAME; returns the path as an argument.
fn file(dir: &Path, name: &str, text: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

/// The headers the backend saw for one GET of /orders through the data plane.
async fn backend_saw(dp: &DataPlane) -> anyhow::Result<serde_json::Value> {
    let request = hyper::Request::get(dp.url("/orders")).body(Full::new(Bytes::new()))?;
    let reply = HttpClient::default().send(request).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    Ok(reply.json()["headers"].clone())
}

fn basic(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// Whether any file under `dir` holds `needle`.
fn found_under(dir: &Path, needle: &[u8]) -> anyhow::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let found = if path.is_dir() {
            found_under(&path, needle)?
        } else {
            std::fs::read(&path)?.windows(needle.len()).any(|w| w == needle)
        };
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn named_values_fill_policy_credentials_and_a_change_reaches_the_next_request() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Named Values CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let (cp_dir, cp_log, dp_log) = (dir.path().join("cp"), dir.path().join("cp.log"), dir.path().join("dp.log"));
    let trace = ["--log", "trace"];
    let cp = ControlPlane::start_logging(&cp_dir, "127.0.0.1:0".parse()?, &trace, Some(&cp_log)).await?;
    let dp = DataPlane::start_logging(&cp.access(), "dp-named-values", Some(&ca_file), &trace, Some(&dp_log)).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    cp.management().await?.upload_certificate(upload("client", ca.client("gateway")?.pfx("pw")?, "pw")).await?;
    let access = cp.access();
    let service_url = backend.url();
    let args = ["api", "put", "orders", "--path", "/orders", "--service-url", &service_url, "--client-cert", "client"];
    write(&access, &args, None).await?;
    let (first, second) = ("first-s3cret", "second-s3cret");

    // A plain value from a file, a secret one from stdin: each loses one trailing newline, and
    // the secret is shown masked from the first answer on.
    let user_file = file(dir.path(), "user.txt", "svc-orders\n")?;
    let out = write(&access, &["nv", "put", "backend-user", "--value-file", &user_file], None).await?;
    assert!(out.stdout.contains("svc-orders") && out.stdout.contains("secret:"), "{}", out.stdout);
    let args = ["-o", "json", "nv", "put", "backend-pw", "--secret", "--value-file", "-"];
    let put = json(&write(&access, &args, Some(&format!("{first}\n"))).await?);
    assert_eq!((put["value"].as_str(), put["secret"].as_bool()), (Some("********"), Some(true)), "{put}");

    // A policy naming a value that does not exist is refused, saying which; nothing changes.
    let policy_file = file(dir.path(), "policy.xml", POLICY)?;
    let before = json(&ctl(&access, &["api", "policy", "orders", "-o", "json"], None).await?);
    let error = refused(&access, &["api", "policy", "orders", "--set", &policy_file]).await?;
    assert!(error.contains("'{{token}}'") && error.contains("no such named value"), "{error}");
    let after = json(&ctl(&access, &["api", "policy", "orders", "-o", "json"], None).await?);
    assert_eq!((&after["xml"], &after["revision"]), (&before["xml"], &before["revision"]));
    let seen = backend_saw(&dp).await?;
    assert!(seen.get("authorization").is_none() && seen.get("x-service-token").is_none(), "{seen}");

    // Once it exists the policy is accepted, and the backend gets the values substituted.
    let token_file = file(dir.path(), "token.txt", "t0k-1\n")?;
    write(&access, &["nv", "put", "token", "--value-file", &token_file], None).await?;
    write(&access, &["api", "policy", "orders", "--set", &policy_file], None).await?;
    let seen = backend_saw(&dp).await?;
    assert_eq!(seen["authorization"], basic("svc-orders", first), "{seen}");
    assert_eq!(seen["x-service-token"], "Bearer t0k-1", "{seen}");
    let read = ctl(&access, &["api", "policy", "orders"], None).await?;
    assert!(read.stdout.contains(r#"username="{{backend-user}}""#), "the references are kept: {}", read.stdout);
    assert!(!read.stdout.contains(first), "{}", read.stdout);

    // A new secret is a new revision: once --wait returns, the very next request carries it.
    let second_file = file(dir.path(), "pw.txt", &format!("{second}\r\n"))?;
    let out = write(&access, &["nv", "put", "backend-pw", "--secret", "--value-file", &second_file], None).await?;
    assert!(out.stdout.contains("dp-named-values applied"), "{}", out.stdout);
    let seen = backend_saw(&dp).await?;
    assert_eq!(seen["authorization"], basic("svc-orders", second), "{seen}");

    // A value that would break the policy naming it is refused, naming the API.
    let colon_file = file(dir.path(), "colon.txt", "svc:orders\n")?;
    let error = refused(&access, &["nv", "put", "backend-user", "--value-file", &colon_file]).await?;
    assert!(error.contains("API 'orders'") && error.contains("username"), "{error}");
    assert_eq!(backend_saw(&dp).await?["authorization"], basic("svc-orders", second));

    // Reads show the mask and who names each value, never a secret.
    let out = ctl(&access, &["nv", "show", "backend-pw", "-o", "json"], None).await?;
    let shown = json(&out);
    assert_eq!((shown["value"].as_str(), shown["secret"].as_bool()), (Some("********"), Some(true)), "{shown}");
    assert_eq!(shown["used_by"], serde_json::json!(["orders"]));
    let list = ctl(&access, &["nv", "list"], None).await?;
    assert!(list.success, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].ends_with("USED BY"), "{}", list.stdout);
    let row = |name: &str| lines.iter().find(|l| l.starts_with(name)).copied().unwrap_or_default();
    assert!(row("backend-pw ").contains("********") && row("backend-pw ").ends_with("orders"), "{}", list.stdout);
    assert!(row("backend-user ").contains("svc-orders") && row("token ").ends_with("orders"), "{}", list.stdout);
    for out in [&out, &list] {
        assert!(!out.stdout.contains(first) && !out.stdout.contains(second), "{}", out.stdout);
    }

    // Deleting a value a policy names is refused, naming the API; one no policy names goes.
    let error = refused(&access, &["nv", "delete", "backend-pw"]).await?;
    assert!(error.contains("backend-pw") && error.contains("orders"), "{error}");
    let request = pb::DeleteNamedValueRequest { name: "backend-pw".into(), ..Default::default() };
    let status = cp.management().await?.delete_named_value(request).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let failure = status.get_details_precondition_failure().expect("google.rpc.PreconditionFailure details");
    let subjects: Vec<String> = failure.violations.into_iter().map(|v| v.subject).collect();
    assert_eq!(subjects, ["apis/orders"]);
    let kept = json(&ctl(&access, &["nv", "show", "backend-pw", "-o", "json"], None).await?);
    assert_eq!(kept["used_by"], serde_json::json!(["orders"]), "{kept}");
    write(&access, &["nv", "put", "unused", "--value-file", &token_file], None).await?;
    let out = write(&access, &["nv", "delete", "unused"], None).await?;
    assert!(out.stdout.contains("named value unused deleted"), "{}", out.stdout);

    // Sealed at rest, and in neither plane's log even at trace level.
    let logs = [("control plane", std::fs::read(&cp_log)?), ("data plane", std::fs::read(&dp_log)?)];
    assert!(logs.iter().all(|(_, log)| log.len() > 10_000), "trace logs were not written");
    assert!(found_under(&cp_dir, b"svc-orders")?, "the store scan misses even a plain value");
    for secret in [first, second] {
        assert!(!found_under(&cp_dir, secret.as_bytes())?, "{secret} is in clear in the control plane's store");
        for (plane, log) in &logs {
            assert!(!log.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in the {plane}'s log");
        }
    }
    Ok(())
}

/// How long a file change may take to reach the backend (polled every second).
const SWAP_TIMEOUT: Duration = Duration::from_secs(10);

/// The Basic password from a linked file; the client certificate the echo backend requires.
const LINKED_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <authentication-certificate certificate-id="client" />
    <authentication-basic username="svc-orders" password="{{backend-pw}}" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

/// Writes `text` beside `path`, then renames it over `path` (what Vault Agent does).
fn rename_over(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Sends requests until the backend sees `authorization`; returns how long that took.
async fn until_backend_sees(dp: &DataPlane, authorization: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let seen = backend_saw(dp).await?;
        if seen["authorization"] == authorization {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(start.elapsed() < SWAP_TIMEOUT, "the backend still saw {}", seen["authorization"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `nv show NAME -o json` shows a failed last refresh whose message holds `holds`;
/// returns the named value shown.
async fn until_refresh_failed(access: &Access, name: &str, holds: &str) -> anyhow::Result<serde_json::Value> {
    let start = Instant::now();
    loop {
        let shown = json(&ctl(access, &["nv", "show", name, "-o", "json"], None).await?);
        let last = &shown["last_refresh"];
        if last["ok"] == false && last["message"].as_str().is_some_and(|m| m.contains(holds)) {
            return Ok(shown);
        }
        anyhow::ensure!(start.elapsed() < SWAP_TIMEOUT, "no failed refresh saying '{holds}' recorded: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_value_linked_to_a_file_follows_it_and_a_broken_or_missing_file_keeps_the_last_good_value()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Linked Named Values CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let (cp_dir, cp_log) = (dir.path().join("cp"), dir.path().join("cp.log"));
    let flags = ["--source-poll", "1", "--log", "trace"];
    let cp = ControlPlane::start_logging(&cp_dir, "127.0.0.1:0".parse()?, &flags, Some(&cp_log)).await?;
    let dp = DataPlane::start(&cp.access(), "dp-linked-values", Some(&ca_file)).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    cp.management().await?.upload_certificate(upload("client", ca.client("gateway")?.pfx("pw")?, "pw")).await?;
    let access = cp.access();
    let service_url = backend.url();
    let args = ["api", "put", "orders", "--path", "/orders", "--service-url", &service_url, "--client-cert", "client"];
    write(&access, &args, None).await?;
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets)?;
    let pw_path = secrets.join("backend-pw");
    let pw_file = pw_path.display().to_string();
    let (first, second, third) = ("first-l1nked-pw", "second-l1nked-pw", "third-l1nked-pw");

    // A relative path, or a file holding what a put would refuse, is refused; nothing is stored.
    let error = refused(&access, &["nv", "link", "backend-pw", "--file", "secrets/backend-pw", "--secret"]).await?;
    assert!(error.contains("absolute"), "{error}");
    std::fs::write(&pw_path, "two\nlines\n")?;
    let error = refused(&access, &["nv", "link", "backend-pw", "--file", &pw_file, "--secret"]).await?;
    assert!(error.contains("control character") && !error.contains("lines"), "{error}");
    let error = refused(&access, &["nv", "show", "backend-pw"]).await?;
    assert!(error.contains("not found"), "{error}");

    // Linked: the control plane reads the file (one trailing newline is not the value).
    std::fs::write(&pw_path, format!("{first}\n"))?;
    let linked =
        json(&write(&access, &["-o", "json", "nv", "link", "backend-pw", "--file", &pw_file, "--secret"], None).await?);
    assert_eq!((linked["value"].as_str(), linked["secret"].as_bool()), (Some("********"), Some(true)), "{linked}");
    assert_eq!(
        (&linked["source"]["file"], &linked["last_refresh"]["ok"]),
        (&serde_json::json!(pw_file), &serde_json::json!(true))
    );
    let policy_file = file(dir.path(), "policy.xml", LINKED_POLICY)?;
    write(&access, &["api", "policy", "orders", "--set", &policy_file], None).await?;
    assert_eq!(backend_saw(&dp).await?["authorization"], basic("svc-orders", first));

    // Renamed over: the backend sees the new password within a poll or two.
    rename_over(&pw_path, &format!("{second}\n"))?;
    let took = until_backend_sees(&dp, &basic("svc-orders", second)).await?;
    println!("named value file swap (rename over) to the backend seeing the new value: {took:?} (--source-poll 1)");

    // Garbage (a control character) keeps the last good value, and says why without the value.
    std::fs::write(&pw_path, "HIDDEN\u{1b}[2Jgarbage\n")?;
    let shown = until_refresh_failed(&access, "backend-pw", "control character").await?;
    assert!(!shown.to_string().contains("HIDDEN") && shown["value"] == "********", "{shown}");
    assert_eq!(backend_saw(&dp).await?["authorization"], basic("svc-orders", second));
    let table = ctl(&access, &["nv", "show", "backend-pw"], None).await?;
    assert!(
        table.stdout.contains(&format!("file {pw_file}")) && table.stdout.contains("FAILED at"),
        "{}",
        table.stdout
    );
    // Refreshing now says the same, as INVALID_ARGUMENT.
    let request = pb::RefreshNamedValueRequest { name: "backend-pw".into() };
    let status = cp.management().await?.refresh_named_value(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("control character") && !status.message().contains("HIDDEN"), "{status:?}");
    // The failures are counted.
    let metrics = HttpClient::default().get(&format!("http://{}/metrics", cp.admin)).await?.body;
    let failures = sample(&metrics, r#"gatehouse_cp_named_value_refresh_failures_total{name="backend-pw"}"#)
        .unwrap_or_else(|| panic!("named value refresh failures missing:\n{metrics}"));
    assert!(failures >= 2.0, "{failures}");

    // A removed file keeps it too.
    std::fs::remove_file(&pw_path)?;
    until_refresh_failed(&access, "backend-pw", &format!("cannot read {pw_file}")).await?;
    assert_eq!(backend_saw(&dp).await?["authorization"], basic("svc-orders", second));

    // Restored and refreshed at once: once --wait returns, the next request carries it.
    std::fs::write(&pw_path, format!("{third}\n"))?;
    let refreshed = json(&write(&access, &["-o", "json", "nv", "refresh", "backend-pw"], None).await?);
    assert_eq!(refreshed["last_refresh"]["ok"], true, "{refreshed}");
    assert_eq!(backend_saw(&dp).await?["authorization"], basic("svc-orders", third));
    let list = ctl(&access, &["nv", "list"], None).await?;
    let row = list.stdout.lines().find(|l| l.starts_with("backend-pw ")).unwrap_or_default();
    assert!(row.contains(&pw_file) && row.contains(" ok ") && row.ends_with("orders"), "{}", list.stdout);

    // A put replaces the value and drops the link: the file no longer matters.
    let put_file = file(dir.path(), "put.txt", "put-by-hand\n")?;
    let put = json(
        &write(&access, &["-o", "json", "nv", "put", "backend-pw", "--secret", "--value-file", &put_file], None)
            .await?,
    );
    assert!(put["source"].is_null() && put["last_refresh"].is_null(), "{put}");
    let error = refused(&access, &["nv", "refresh", "backend-pw"]).await?;
    assert!(error.contains("no source") && error.contains("nv link"), "{error}");
    rename_over(&pw_path, "ignored-now\n")?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(backend_saw(&dp).await?["authorization"], basic("svc-orders", "put-by-hand"));

    // No linked secret in any answer, the control plane's log (at trace level) or its data dir.
    let log = std::fs::read(&cp_log)?;
    for secret in [first, second, third] {
        assert!(!found_under(&cp_dir, secret.as_bytes())?, "{secret} is in clear in the control plane's store");
        assert!(!log.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in the control plane's log");
        for out in [&linked, &refreshed, &shown] {
            assert!(!out.to_string().contains(secret), "{out}");
        }
    }
    Ok(())
}
