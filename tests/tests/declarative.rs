//! Declarative configuration through the real binaries: `gatehousectl export` writes what an
//! operator configured, `apply` makes a control plane match a file in one revision (or refuses
//! it whole, listing every error), `diff` says what `apply` would change, and `--prune` deletes
//! what the file leaves out.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{Access, ControlPlane, CtlOutput, binary, ctl};
use serde_json::{Value, json};

/// Basic credentials from named values (the password a secret one), a secret header given as
/// itself, and the client certificate by id.
const ORDERS_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <authentication-certificate certificate-id="client" />
    <authentication-basic username="{{backend-user}}" password="{{backend-pw}}" />
    <set-header name="X-Api-Key" exists-action="override" secret="true">
      <value>header-s3cret</value>
    </set-header>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

/// A plain header from a named value.
const BILLING_POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <set-header name="X-Caller" exists-action="override"><value>gateway-{{backend-user}}</value></set-header>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"#;

/// `gatehousectl ARGS`, which must succeed.
async fn ok(access: &Access, args: &[&str]) -> anyhow::Result<CtlOutput> {
    let out = ctl(access, args, None).await?;
    anyhow::ensure!(out.success, "gatehousectl {args:?} failed: {}", out.stderr);
    Ok(out)
}

/// `gatehousectl ARGS`: its exit status, stdout and stderr (`ctl` says only whether it
/// succeeded, and `diff` has three outcomes).
async fn status(access: &Access, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut command = tokio::process::Command::new(binary("gatehousectl")?);
    command.arg("--server").arg(&access.url);
    if let Some(ca) = &access.ca_file {
        command.arg("--ca-file").arg(ca);
    }
    if let Some(token) = &access.operator_token_file {
        command.arg("--token-file").arg(token);
    }
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output()).await??;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok((output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr)))
}

fn json(out: &CtlOutput) -> anyhow::Result<Value> {
    serde_json::from_str(&out.stdout).map_err(|e| anyhow::anyhow!("not JSON ({e}): {}", out.stdout))
}

/// The control plane's latest revision, as `gateway list -o json` shows it.
async fn revision(access: &Access) -> anyhow::Result<u64> {
    let list = json(&ok(access, &["-o", "json", "gateway", "list"]).await?)?;
    list["revision"].as_u64().ok_or_else(|| anyhow::anyhow!("no revision in {list}"))
}

/// Writes `contents` to DIR/NAME; returns the path as an argument.
fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, contents)?;
    Ok(path.display().to_string())
}

/// The entry of `list` whose `key` is `id`.
fn entry<'a>(list: &'a mut Value, key: &str, id: &str) -> &'a mut Value {
    list.as_array_mut()
        .and_then(|items| items.iter_mut().find(|item| item[key] == id))
        .unwrap_or_else(|| panic!("no {key} {id}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_applies_as_no_change_and_rebuilds_an_empty_control_plane() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let first = cp.access();
    let ca = TestCa::new("Declarative Backend CA")?;
    let ca_file = write(dir.path(), "backend-root.pem", ca.pem())?;
    let client_pfx = write(dir.path(), "client.pfx", ca.client("gateway")?.pfx("client-pw")?)?;
    let server_pfx = write(dir.path(), "api-server.pfx", ca.server(&["api.example.com"])?.pfx("server-pw")?)?;
    let client_pw = write(dir.path(), "client-pw.txt", "client-pw\n")?;
    let server_pw = write(dir.path(), "server-pw.txt", "server-pw\n")?;
    let user = write(dir.path(), "user.txt", "svc-orders\n")?;
    let secret = write(dir.path(), "backend-pw.txt", "nv-s3cret\n")?;
    let (orders_policy, billing_policy) =
        (write(dir.path(), "orders.xml", ORDERS_POLICY)?, write(dir.path(), "billing.xml", BILLING_POLICY)?);

    // Configured the usual way, one command at a time.
    for args in [
        &["ca", "upload", "backend-root", "--file", &ca_file][..],
        &["cert", "upload", "client", "--pfx", &client_pfx, "--password-file", &client_pw],
        &["cert", "upload", "api-server", "--pfx", &server_pfx, "--password-file", &server_pw],
        &["hostname", "put", "api.example.com", "--cert", "api-server", "--default"],
        &["nv", "put", "backend-user", "--value-file", &user],
        &["nv", "put", "backend-pw", "--secret", "--value-file", &secret],
        &["api", "put", "orders", "--path", "/orders", "--service-url", "https://orders.internal:8443"],
        &["api", "update", "orders", "--display-name", "Orders", "--ca", "backend-root", "--system-roots", "false"],
        &["api", "policy", "orders", "--set", &orders_policy],
        &["api", "put", "billing", "--path", "/billing", "--service-url", "https://billing.internal"],
        &["api", "update", "billing", "--host", "api.example.com", "--subscription-required", "true"],
        &["api", "policy", "billing", "--set", &billing_policy],
        &["subscription", "create", "partner", "--api", "billing", "--display-name", "Partner"],
    ] {
        ok(&first, args).await?;
    }

    let yaml = ok(&first, &["export"]).await?.stdout;
    let exported = json(&ok(&first, &["export", "-o", "json"]).await?)?;
    // What is never exported: private keys and passwords (there is no place for them), secret
    // values (named or in policies), subscription keys.
    for secret in ["client-pw", "server-pw", "nv-s3cret", "header-s3cret", "PRIVATE KEY"] {
        assert!(!yaml.contains(secret) && !exported.to_string().contains(secret), "{secret} exported: {yaml}");
    }
    assert_eq!(exported["apiVersion"], "gatehouse/v1");
    assert_eq!(
        exported["namedValues"],
        json!([
            { "name": "backend-pw", "secret": true },
            { "name": "backend-user", "value": "svc-orders" },
        ])
    );
    let ids = |key: &str, field: &str| -> Vec<Value> {
        exported[key].as_array().map(|items| items.iter().map(|i| i[field].clone()).collect()).unwrap_or_default()
    };
    assert_eq!(ids("certificates", "id"), [json!("api-server"), json!("client")]);
    assert_eq!(ids("apis", "id"), [json!("billing"), json!("orders")]);
    assert_eq!(
        exported["subscriptions"],
        json!([{ "name": "partner", "displayName": "Partner", "scope": "billing", "state": "active" }])
    );
    assert!(yaml.contains("{{backend-user}}") && yaml.contains("  policy: |"), "{yaml}");
    let orders = &exported["apis"][1];
    assert_eq!(orders["backendTls"], json!({ "caCertificateIds": ["backend-root"], "trustSystemRoots": false }));

    // Applied to where it came from: nothing to do, no revision.
    let file = write(dir.path(), "export.yaml", &yaml)?;
    let before = revision(&first).await?;
    let (code, stdout, stderr) = status(&first, &["diff", "-f", &file]).await?;
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    let out = ok(&first, &["apply", "-f", &file]).await?;
    assert_eq!(out.stdout, format!("no changes (revision {before})\n"));
    assert_eq!(revision(&first).await?, before);

    // An empty control plane, rebuilt from the export. What the export cannot hold is given
    // again: the CA certificate, the PFX files and their passwords, the secret named value, and
    // the policy's literal secrets (masked in the export). Paths are relative to the file.
    let mut rebuild = exported.clone();
    entry(&mut rebuild["caCertificates"], "id", "backend-root")["certificateFile"] = json!("backend-root.pem");
    for (id, pfx, password) in
        [("client", "client.pfx", "client-pw.txt"), ("api-server", "api-server.pfx", "server-pw.txt")]
    {
        let certificate = entry(&mut rebuild["certificates"], "id", id);
        certificate["pfx"] = json!(pfx);
        certificate["passwordFile"] = json!(password);
    }
    entry(&mut rebuild["namedValues"], "name", "backend-pw")["valueFile"] = json!("backend-pw.txt");
    let policy = entry(&mut rebuild["apis"], "id", "orders")["policy"].as_str().unwrap().to_string();
    // The Basic password is only a reference ({{backend-pw}}), so it is not masked: the secret
    // header's value is the one secret the export cannot hold.
    assert!(policy.contains(r#"password="{{backend-pw}}""#), "{policy}");
    assert_eq!(policy.matches("********").count(), 1, "{policy}");
    let policy = policy.replacen("********", "header-s3cret", 1);
    entry(&mut rebuild["apis"], "id", "orders")["policy"] = json!(policy);
    let rebuild_file = write(dir.path(), "rebuild.json", serde_json::to_vec_pretty(&rebuild)?)?;

    let second_cp = ControlPlane::start(&dir.path().join("cp2")).await?;
    let second = second_cp.access();
    let (code, stdout, stderr) = status(&second, &["diff", "-f", &rebuild_file]).await?;
    assert_eq!(code, 1, "{stderr}");
    let planned: Vec<&str> = stdout.lines().collect();
    assert!(planned.contains(&"+ ca-certificate backend-root") && planned.contains(&"+ api orders"), "{stdout}");
    assert!(planned.contains(&"+ subscription partner") && planned.len() == 9, "{stdout}");
    let empty = revision(&second).await?;
    let out = ok(&second, &["apply", "-f", &rebuild_file]).await?;
    assert!(out.stdout.starts_with(&stdout), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("revision {}\n", empty + 1)), "{}", out.stdout);
    // The new subscription's keys, once.
    assert!(out.stdout.contains("subscription partner primary key:"), "{}", out.stdout);
    assert!(out.stderr.contains("shown only now"), "{}", out.stderr);
    assert_eq!(revision(&second).await?, empty + 1);

    // Exported again, the second is the first: the same ids and thumbprints, the same masks.
    let again = json(&ok(&second, &["export", "-o", "json"]).await?)?;
    assert_eq!(again, exported);
    assert_eq!(ok(&second, &["export"]).await?.stdout, yaml);
    let (code, _, stderr) = status(&second, &["diff", "-f", &file]).await?;
    assert_eq!(code, 0, "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declaration_is_one_revision() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let access = cp.access();
    let ca = TestCa::new("One Revision CA")?;
    let pfx = write(dir.path(), "server.pfx", ca.server(&["*.example.com"])?.pfx("")?)?;
    ok(&access, &["cert", "upload", "wildcard", "--pfx", &pfx, "--empty-password"]).await?;
    let file = write(
        dir.path(),
        "gatehouse.yaml",
        "apiVersion: gatehouse/v1
kind: Configuration
certificates:
- id: wildcard
hostnames:
- name: '*.example.com'
  certificateId: wildcard
apis:
- id: a
  path: /a
  serviceUrl: http://127.0.0.1:9001
- id: b
  path: /b
  serviceUrl: http://127.0.0.1:9002
  hostnames: ['*.example.com']
- id: c
  path: /c
  serviceUrl: http://127.0.0.1:9003
",
    )?;
    let before = revision(&access).await?;
    let applied = json(&ok(&access, &["-o", "json", "apply", "-f", &file]).await?)?;
    assert_eq!(applied["revision"], before + 1, "{applied}");
    let changes: Vec<String> = applied["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!("{} {} {}", c["action"].as_str().unwrap(), c["kind"].as_str().unwrap(), c["id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(changes, ["create hostname *.example.com", "create api a", "create api b", "create api c"]);
    assert_eq!(revision(&access).await?, before + 1);
    let apis = json(&ok(&access, &["-o", "json", "api", "list"]).await?)?;
    let revisions: Vec<&Value> = apis.as_array().unwrap().iter().map(|api| &api["revision"]).collect();
    assert_eq!(revisions, [&json!(before + 1); 3], "{apis}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_declaration_lists_every_error_and_changes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let access = cp.access();
    ok(&access, &["api", "put", "kept", "--path", "/kept", "--service-url", "http://127.0.0.1:9000"]).await?;
    let file = write(
        dir.path(),
        "broken.yaml",
        "apiVersion: gatehouse/v1
kind: Configuration
apis:
- id: kept
  path: /kept
  serviceUrl: http://127.0.0.1:9009
- id: orders
  path: /orders
  serviceUrl: https://orders.internal:8443
  credentials:
    certificateId: missing
- id: billing
  path: billing-without-slash
  serviceUrl: https://billing.internal
",
    )?;
    let before = revision(&access).await?;
    for command in ["apply", "diff"] {
        let (code, stdout, stderr) = status(&access, &[command, "-f", &file]).await?;
        assert_eq!(code, if command == "diff" { 2 } else { 1 }, "{command}: {stderr}");
        assert_eq!(stdout, "", "{command}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(lines[0].contains("refused, nothing changed, 2 errors"), "{stderr}");
        assert!(lines.iter().any(|l| l.starts_with("  api/orders: ") && l.contains("missing")), "{stderr}");
        assert!(lines.iter().any(|l| l.starts_with("  api/billing: ") && l.contains("path")), "{stderr}");
        assert_eq!(lines.len(), 3, "{stderr}");
    }
    assert_eq!(revision(&access).await?, before);
    let kept = json(&ok(&access, &["-o", "json", "api", "show", "kept"]).await?)?;
    assert_eq!(kept["service_url"], "http://127.0.0.1:9000");
    let apis = json(&ok(&access, &["-o", "json", "api", "list"]).await?)?;
    assert_eq!(apis.as_array().map(Vec::len), Some(1), "{apis}");

    // A misspelt key is refused before anything is sent, naming the key and where it is.
    let typo = write(
        dir.path(),
        "typo.yaml",
        "apiVersion: gatehouse/v1\nkind: Configuration\napis:\n- id: a\n  path: /a\n  serviceURL: http://127.0.0.1:9000\n",
    )?;
    let (code, _, stderr) = status(&access, &["apply", "-f", &typo]).await?;
    assert_eq!(code, 1);
    assert!(stderr.contains("apis[0]: unknown field `serviceURL`") && stderr.contains("line 6"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_what_the_file_leaves_out_and_diff_shows_it_first() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let access = cp.access();
    for api in ["kept", "dropped"] {
        let path = format!("/{api}");
        ok(&access, &["api", "put", api, "--path", &path, "--service-url", "http://127.0.0.1:9000"]).await?;
    }
    let mut declaration = json(&ok(&access, &["export", "-o", "json"]).await?)?;
    declaration["apis"].as_array_mut().unwrap().retain(|api| api["id"] != "dropped");
    let file = write(dir.path(), "kept.json", serde_json::to_vec(&declaration)?)?;

    // Without --prune, leaving something out changes nothing.
    let (code, stdout, stderr) = status(&access, &["diff", "-f", &file]).await?;
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    let (code, stdout, stderr) = status(&access, &["diff", "-f", &file, "--prune"]).await?;
    assert_eq!((code, stdout.as_str()), (1, "- api dropped\n"), "{stderr}");

    let before = revision(&access).await?;
    let out = ok(&access, &["--wait", "apply", "-f", &file, "--prune"]).await?;
    assert_eq!(out.stdout.lines().take(2).collect::<Vec<_>>(), ["- api dropped", &format!("revision {}", before + 1)]);
    let apis = json(&ok(&access, &["-o", "json", "api", "list"]).await?)?;
    let ids: Vec<&Value> = apis.as_array().unwrap().iter().map(|api| &api["id"]).collect();
    assert_eq!(ids, [&json!("kept")]);
    let (code, stdout, _) = status(&access, &["diff", "-f", &file, "--prune"]).await?;
    assert_eq!((code, stdout.as_str()), (0, ""));
    Ok(())
}
