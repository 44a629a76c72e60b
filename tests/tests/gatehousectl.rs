//! Operator story steps 1-4 through `gatehousectl`, as an operator types them.

use gatehouse_tests::process::{ControlPlane, ctl};
use gatehouse_tests::{fixture, fixture_thumbprint};

#[tokio::test(flavor = "multi_thread")]
async fn operator_story_through_the_cli() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let server = cp.access();
    let pfx = dir.path().join("client.pfx");
    std::fs::write(&pfx, fixture("rsa-modern.pfx"))?;
    let pfx = pfx.to_str().unwrap();
    let password_file = dir.path().join("pw.txt");
    // As `echo modern-pass > pw.txt` writes it: the trailing newline is not part of the password.
    std::fs::write(&password_file, "modern-pass\n")?;
    let pw = password_file.to_str().unwrap();

    // Wrong password: one line, non-zero, says why, stores nothing.
    let wrong = dir.path().join("wrong.txt");
    std::fs::write(&wrong, "nope")?;
    let out =
        ctl(&server, &["cert", "upload", "client", "--pfx", pfx, "--password-file", wrong.to_str().unwrap()], None)
            .await?;
    assert!(!out.success);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("password is incorrect"), "{}", out.stderr);
    let out = ctl(&server, &["cert", "list", "-o", "json"], None).await?;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out.stdout)?, serde_json::json!([]));

    // Upload from a password file, and a second certificate from stdin.
    let out = ctl(&server, &["cert", "upload", "client", "--pfx", pfx, "--password-file", pw], None).await?;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains(&fixture_thumbprint("rsa.sha1")), "{}", out.stdout);
    let ec = dir.path().join("ec.pfx");
    std::fs::write(&ec, fixture("ec-p256.pfx"))?;
    let out =
        ctl(&server, &["cert", "upload", "ec", "--pfx", ec.to_str().unwrap(), "--password-stdin"], Some("ec-pass"))
            .await?;
    assert!(out.success, "{}", out.stderr);

    for (api, path) in [("orders", "/orders"), ("billing", "/billing")] {
        let out = ctl(
            &server,
            &["api", "put", api, "--path", path, "--service-url", "https://localhost:9443", "--client-cert", "client"],
            None,
        )
        .await?;
        assert!(out.success, "{}", out.stderr);
    }
    let out =
        ctl(&server, &["api", "credentials", "billing", "--thumbprint", &fixture_thumbprint("rsa.sha1")], None).await?;
    assert!(out.success, "{}", out.stderr);

    // The table shows the full thumbprint and who uses each certificate.
    let out = ctl(&server, &["cert", "list"], None).await?;
    let row = out.stdout.lines().find(|l| l.starts_with("client ")).expect("client row");
    assert!(row.contains(&fixture_thumbprint("rsa.sha1")) && row.contains("billing,orders"), "{}", out.stdout);
    assert!(out.stdout.lines().next().unwrap().starts_with("ID"), "{}", out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&ctl(&server, &["cert", "show", "client", "-o", "json"], None).await?.stdout)?;
    assert_eq!(json["used_by"], serde_json::json!(["billing", "orders"]));
    assert_eq!(json["thumbprint"], fixture_thumbprint("rsa.sha1"));

    // Deleting a certificate in use is refused and names every API.
    let out = ctl(&server, &["cert", "delete", "client"], None).await?;
    assert!(!out.success);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("billing") && out.stderr.contains("orders"), "{}", out.stderr);
    assert!(out.stderr.contains("gatehousectl api credentials billing --none"), "hint missing: {}", out.stderr);

    for api in ["orders", "billing"] {
        assert!(ctl(&server, &["api", "credentials", api, "--none"], None).await?.success);
    }
    let out = ctl(&server, &["cert", "delete", "client"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let out = ctl(&server, &["cert", "show", "client"], None).await?;
    assert!(!out.success && out.stderr.contains("not found"), "{}", out.stderr);

    let apis: serde_json::Value =
        serde_json::from_str(&ctl(&server, &["api", "list", "-o", "json"], None).await?.stdout)?;
    assert_eq!(apis.as_array().unwrap().len(), 2);
    assert_eq!(apis[0]["credentials"], serde_json::Value::Null);
    let out = ctl(&server, &["api", "delete", "orders"], None).await?;
    assert!(out.success, "{}", out.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_habits_found_in_the_trial() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp_dir = dir.path().join("cp");
    let mut cp = ControlPlane::start(&cp_dir).await?;
    let server = cp.access();

    // --timeout in milliseconds.
    let out = ctl(
        &server,
        &["--wait", "--timeout", "500ms", "api", "put", "a", "--path", "/a", "--service-url", "https://b"],
        None,
    )
    .await?;
    assert!(out.success, "{}", out.stderr);

    // --fail turns a non-empty expiry list into exit 1, for cron.
    let out = ctl(&server, &["cert", "list", "--expiring-within", "30d", "--fail"], None).await?;
    assert!(out.success, "nothing expires: {}", out.stderr);
    let pfx = dir.path().join("client.pfx");
    std::fs::write(&pfx, fixture("rsa-modern.pfx"))?;
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "modern-pass")?;
    let out = ctl(
        &server,
        &["cert", "upload", "c", "--pfx", pfx.to_str().unwrap(), "--password-file", pw.to_str().unwrap()],
        None,
    )
    .await?;
    assert!(out.success, "{}", out.stderr);
    let out = ctl(&server, &["cert", "list", "--expiring-within", "1000000d", "--fail"], None).await?;
    assert!(!out.success && out.stdout.contains("rsa-client"), "{}\n{}", out.stdout, out.stderr);

    // Input files over the limit are refused before anything is sent.
    let huge = dir.path().join("huge.pfx");
    std::fs::write(&huge, vec![0u8; 5 * 1024 * 1024])?;
    let out = ctl(
        &server,
        &["cert", "upload", "h", "--pfx", huge.to_str().unwrap(), "--password-file", pw.to_str().unwrap()],
        None,
    )
    .await?;
    assert!(!out.success && out.stderr.contains("larger than 4 MiB"), "{}", out.stderr);
    // An unreadable file keeps the OS's reason.
    let out = ctl(
        &server,
        &["cert", "upload", "h", "--pfx", "/nonexistent/x.pfx", "--password-file", pw.to_str().unwrap()],
        None,
    )
    .await?;
    assert!(!out.success && out.stderr.contains("No such file"), "{}", out.stderr);

    // Control characters in values are shown, not acted on.
    let out = ctl(&server, &["api", "update", "a", "--display-name", "evil\u{1b}[2J\nline"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let out = ctl(&server, &["api", "show", "a"], None).await?;
    assert!(!out.stdout.contains('\u{1b}') && out.stdout.contains("\\u{1b}"), "{}", out.stdout);

    // Roles in one case.
    let out = ctl(&server, &["token", "list", "-o", "json"], None).await?;
    assert!(
        out.stdout.contains(r#""role":"operator""#) || out.stdout.contains(r#""role": "operator""#),
        "{}",
        out.stdout
    );

    // The last operator token needs --force; a restart writes a new one.
    let out = ctl(&server, &["token", "revoke", "admin"], None).await?;
    assert!(!out.success && out.stderr.contains("last operator token"), "{}", out.stderr);
    let out = ctl(&server, &["token", "revoke", "admin", "--force"], None).await?;
    assert!(out.success, "{}", out.stderr);
    let out = ctl(&server, &["cert", "list"], None).await?;
    assert!(!out.success, "the revoked token still works");
    let addr = cp.addr;
    cp.process.kill().await;
    let cp = ControlPlane::start_on(&cp_dir, addr).await?;
    let out = ctl(&cp.access(), &["cert", "list"], None).await?;
    assert!(out.success, "the new operator.token works: {}", out.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_failures_come_with_the_flag_that_fixes_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Loopback, but an address the generated certificate does not name (the kit's own gateway
    // token, which it would fetch over that name, is not needed here).
    std::fs::create_dir_all(dir.path().join("cp"))?;
    std::fs::write(dir.path().join("cp/gateway.token"), "unused")?;
    let cp = ControlPlane::start_on(&dir.path().join("cp"), "127.0.0.2:0".parse()?).await?;
    let access = cp.access();
    let out = ctl(&access, &["cert", "list"], None).await?;
    assert!(!out.success && out.stderr.contains("--tls-san 127.0.0.2"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);

    let mut plain = access.clone();
    plain.url = access.url.replace("https://", "http://");
    let out = ctl(&plain, &["cert", "list"], None).await?;
    assert!(!out.success && out.stderr.contains("use https://"), "{}", out.stderr);

    // The admin port speaks plain HTTP, not TLS.
    let mut admin = access.clone();
    admin.url = format!("https://{}", cp.admin);
    let out = ctl(&admin, &["cert", "list"], None).await?;
    assert!(!out.success && out.stderr.contains("does not speak TLS"), "{}", out.stderr);

    let mut no_ca = access.clone();
    no_ca.ca_file = None;
    let out = ctl(&no_ca, &["cert", "list"], None).await?;
    assert!(!out.success && out.stderr.contains("--ca-file"), "{}", out.stderr);
    Ok(())
}
