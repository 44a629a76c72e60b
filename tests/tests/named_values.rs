//! Named values end to end, through the real binaries: an operator puts values with
//! `gatehousectl nv`, an API's policy names them as `{{name}}` in its Basic credentials and in a
//! header, and the echo backend reports the headers the data plane sent. A changed value reaches
//! the very next request once `--wait` returns; a secret one is never shown again, nor kept in
//! clear on disk or in a log.

use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use gatehouse_proto::v1 as pb;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::http_client::HttpClient;
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
