//! Subscription keys end to end, through the real binaries: an operator makes subscriptions
//! with `gatehousectl` (keys shown once), APIs require them, and API clients send a key in the
//! API's header or in the query parameter `subscription-key`. The backend reports the request
//! target and headers it saw, so the tests can tell that the key never reached it; the logs of
//! both planes, at trace level, never hold a key either.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_proto::v1 as pb;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::http_client::{HttpClient, Reply, raw_get, raw_request, sample};
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{Access, ControlPlane, CtlOutput, DataPlane, ctl};
use gatehouse_tests::requests::upload;
use http_body_util::Full;
use hyper::StatusCode;
use tonic::Code;
use tonic_types::StatusExt as _;

const WAIT: [&str; 3] = ["--wait", "--timeout", "15s"];

fn json(out: &CtlOutput) -> serde_json::Value {
    assert!(out.success, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// `gatehousectl --wait ARGS`, which must succeed.
async fn write(access: &Access, args: &[&str]) -> anyhow::Result<CtlOutput> {
    let out = ctl(access, &[&WAIT[..], args].concat(), None).await?;
    assert!(out.success, "{args:?}: {}", out.stderr);
    Ok(out)
}

/// Creates a subscription (`-o json`, waiting for the data plane); returns its two keys.
async fn create(access: &Access, name: &str, scope: &[&str]) -> anyhow::Result<(String, String)> {
    let out = write(access, &[&["-o", "json", "subscription", "create", name][..], scope].concat()).await?;
    let created = json(&out);
    assert_eq!(created["name"], name);
    assert_eq!(created["state"], "active");
    let key = |which: &str| created[which].as_str().expect("a key").to_string();
    Ok((key("primary_key"), key("secondary_key")))
}

/// GETs `target` on the data plane with `headers`.
async fn get(dp: &DataPlane, target: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
    let mut request = hyper::Request::get(dp.url(target));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    HttpClient::default().send(request.body(Full::new(Bytes::new()))?).await
}

/// The request reached the backend: 200, and what the backend saw.
fn passed(reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()
}

/// A problem+json refusal with `status` and `title`, naming the API.
fn refused(reply: &Reply, status: StatusCode, title: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let problem = reply.json();
    assert_eq!((problem["status"].as_u64(), problem["title"].as_str()), (Some(status.as_u16() as u64), Some(title)));
    assert_eq!(problem["api"], "orders");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

struct World {
    dir: tempfile::TempDir,
    cp: ControlPlane,
    dp: DataPlane,
    backend: EchoBackend,
}

/// A control plane and a data plane logging at trace level into DIR/cp.log and DIR/dp.log, and
/// a backend that requires the test CA's client certificate "client" (uploaded).
async fn world() -> anyhow::Result<World> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Subscriptions CA")?;
    let ca_file = ca.write_pem(dir.path(), "ca.pem")?;
    let trace = ["--log", "trace"];
    let cp_dir = dir.path().join("cp");
    let cp =
        ControlPlane::start_logging(&cp_dir, "127.0.0.1:0".parse()?, &trace, Some(&dir.path().join("cp.log"))).await?;
    let dp_log = dir.path().join("dp.log");
    let dp = DataPlane::start_logging(&cp.access(), "dp-subscriptions", Some(&ca_file), &trace, Some(&dp_log)).await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    cp.management().await?.upload_certificate(upload("client", ca.client("gateway")?.pfx("pw")?, "pw")).await?;
    Ok(World { dir, cp, dp, backend })
}

/// `api put ID --path /ID --service-url BACKEND/base-ID --client-cert client EXTRA...`.
async fn put_api(w: &World, id: &str, extra: &[&str]) -> anyhow::Result<()> {
    let (path, service_url) = (format!("/{id}"), format!("{}/base-{id}", w.backend.url()));
    let args = ["api", "put", id, "--path", &path, "--service-url", &service_url, "--client-cert", "client"];
    write(&w.cp.access(), &[&args[..], extra].concat()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_keys_open_their_apis_and_never_reach_the_backend_or_a_log() -> anyhow::Result<()> {
    let w = world().await?;
    let access = w.cp.access();
    put_api(&w, "orders", &["--subscription-required"]).await?;
    put_api(&w, "billing", &["--subscription-required", "--subscription-key-header", "X-Api-Key"]).await?;
    put_api(&w, "open", &[]).await?;
    let shown = json(&ctl(&access, &["api", "show", "orders", "-o", "json"], None).await?);
    assert_eq!(
        (shown["subscription_required"].as_bool(), shown["subscription_key_header"].as_str()),
        (Some(true), Some("Ocp-Apim-Subscription-Key"))
    );

    // Keys are printed once, at creation; the table form shows them too.
    let (primary, secondary) = create(&access, "partner", &["--api", "orders", "--display-name", "Partner A"]).await?;
    assert!(primary.starts_with("ghsk_") && secondary.starts_with("ghsk_") && primary != secondary);
    let (everything, _) = create(&access, "everything", &["--all-apis"]).await?;
    let (billing_only, billing_secondary) = create(&access, "billing-only", &["--api", "billing"]).await?;
    let out = write(&access, &["subscription", "create", "tabled", "--all-apis"]).await?;
    assert!(out.stdout.contains("primary key:") && out.stdout.contains("ghsk_"), "{}", out.stdout);
    assert!(out.stderr.contains("shown only now"), "{}", out.stderr);
    let tabled_key = out.stdout.lines().find(|l| l.starts_with("primary key:")).unwrap().split_whitespace().last();
    let tabled_key = tabled_key.unwrap().to_string();

    // In the header (any case) or the query; either way the backend never sees it, and the
    // rest of the query goes on unchanged.
    let header = "Ocp-Apim-Subscription-Key";
    let seen = passed(&get(&w.dp, "/orders/42?a=1", &[(header, &primary)]).await?);
    assert_eq!(seen["path"], "/base-orders/42?a=1");
    assert!(seen["headers"].get("ocp-apim-subscription-key").is_none(), "{seen}");
    let raw =
        raw_request(w.dp.addr, &raw_get("/orders/1", &[&format!("OCP-APIM-subscription-KEY: {primary}")])).await?;
    assert_eq!(raw.status, Some(200), "{}", raw.body);
    let target = format!("/orders/42?a=1&subscription-key={secondary}&b=x%20y");
    let seen = passed(&get(&w.dp, &target, &[]).await?);
    assert_eq!(seen["path"], "/base-orders/42?a=1&b=x%20y");
    let seen = passed(&get(&w.dp, &format!("/orders?subscription-key={primary}"), &[]).await?);
    assert_eq!(seen["path"], "/base-orders");
    let seen = passed(&get(&w.dp, &format!("/orders?subscription-key={everything}"), &[]).await?);
    assert!(!seen.to_string().contains(&everything), "{seen}");

    // Refused before anything goes to the backend: missing or unknown 401, another API's 401.
    let served = w.backend.requests();
    refused(&get(&w.dp, "/orders/1", &[]).await?, StatusCode::UNAUTHORIZED, "Subscription key required");
    let reply = get(&w.dp, "/orders/1", &[(header, "ghsk_not-a-key")]).await?;
    refused(&reply, StatusCode::UNAUTHORIZED, "Invalid subscription key");
    let reply = get(&w.dp, &format!("/orders/1?subscription-key={billing_only}"), &[]).await?;
    refused(&reply, StatusCode::UNAUTHORIZED, "Invalid subscription key");
    assert_eq!(reply.json()["detail"], "the subscription key is not valid for this API", "says nothing of billing");
    assert_eq!(w.backend.requests(), served, "no refused request reached the backend");

    // Billing takes keys in its own header (and the query), its own subscription's and the
    // all-APIs one; the default header is not its header.
    let seen = passed(&get(&w.dp, "/billing/1", &[("X-Api-Key", &billing_secondary)]).await?);
    assert!(seen["headers"].get("x-api-key").is_none(), "{seen}");
    passed(&get(&w.dp, "/billing/1", &[("x-api-key", &everything)]).await?);
    passed(&get(&w.dp, "/billing/1", &[("x-api-key", &tabled_key)]).await?);
    let reply = get(&w.dp, "/billing/1", &[(header, &billing_only)]).await?;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert!(reply.json()["detail"].as_str().unwrap().contains("X-Api-Key header"), "{}", reply.body);
    // An API that requires no key passes the header on as any other.
    let seen = passed(&get(&w.dp, "/open/1", &[(header, "not-a-key-here")]).await?);
    assert_eq!(seen["headers"]["ocp-apim-subscription-key"], "not-a-key-here");

    // Suspended: 403 for both keys; resumed: back.
    write(&access, &["subscription", "suspend", "partner"]).await?;
    let reply = get(&w.dp, "/orders/1", &[(header, &primary)]).await?;
    refused(&reply, StatusCode::FORBIDDEN, "Subscription suspended");
    refused(
        &get(&w.dp, &format!("/orders?subscription-key={secondary}"), &[]).await?,
        StatusCode::FORBIDDEN,
        "Subscription suspended",
    );
    let shown = json(&ctl(&access, &["subscription", "show", "partner", "-o", "json"], None).await?);
    assert_eq!(shown["state"], "suspended");
    write(&access, &["subscription", "resume", "partner"]).await?;
    passed(&get(&w.dp, "/orders/1", &[(header, &primary)]).await?);

    // Regenerated primary: the old one is refused, the secondary still works, the new one too.
    let out = write(&access, &["-o", "json", "subscription", "regenerate", "partner", "--primary"]).await?;
    let regenerated = json(&out);
    assert_eq!(regenerated["which"], "primary");
    let new_primary = regenerated["key"].as_str().unwrap().to_string();
    assert!(new_primary.starts_with("ghsk_") && new_primary != primary);
    refused(
        &get(&w.dp, "/orders/1", &[(header, &primary)]).await?,
        StatusCode::UNAUTHORIZED,
        "Invalid subscription key",
    );
    passed(&get(&w.dp, "/orders/1", &[(header, &secondary)]).await?);
    passed(&get(&w.dp, "/orders/1", &[(header, &new_primary)]).await?);

    // Refusals count as client errors.
    let metrics = HttpClient::default().get(&w.dp.admin_url("/metrics")).await?.body;
    let refusals = sample(&metrics, r#"gatehouse_requests_total{api="orders",class="4xx"}"#).unwrap_or_default();
    assert!(refusals >= 6.0, "{metrics}");

    // No listing or read shows a key.
    let keys = [&primary, &secondary, &new_primary, &everything, &billing_only, &billing_secondary, &tabled_key];
    for args in [
        &["subscription", "list"][..],
        &["subscription", "list", "-o", "json"],
        &["subscription", "show", "partner"],
        &["subscription", "show", "partner", "-o", "json"],
    ] {
        let out = ctl(&access, args, None).await?;
        assert!(out.success, "{}", out.stderr);
        assert!(out.stdout.contains("partner"), "{}", out.stdout);
        for key in keys {
            assert!(!out.stdout.contains(key.as_str()), "{args:?} shows a key: {}", out.stdout);
        }
    }
    let list = json(&ctl(&access, &["subscription", "list", "-o", "json"], None).await?);
    let scopes: Vec<(&str, &str)> =
        list.as_array().unwrap().iter().map(|s| (s["name"].as_str().unwrap(), s["scope"].as_str().unwrap())).collect();
    assert_eq!(scopes, [("billing-only", "billing"), ("everything", ""), ("partner", "orders"), ("tabled", "")]);

    let (cp_log, dp_log) = (w.dir.path().join("cp.log"), w.dir.path().join("dp.log"));
    let World { dir: _dir, cp, dp, backend: _backend } = w;
    drop(dp);
    drop(cp);
    tokio::time::sleep(Duration::from_millis(200)).await;
    no_key_in_logs(&cp_log, &dp_log, &keys)?;
    Ok(())
}

/// Neither log (at trace level) holds any key; the control plane's audits the writes.
fn no_key_in_logs(cp_log: &Path, dp_log: &Path, keys: &[&String]) -> anyhow::Result<()> {
    let logs = [std::fs::read(cp_log)?, std::fs::read(dp_log)?];
    assert!(logs[0].len() > 10_000 && logs[1].len() > 1_000, "trace logs were not written");
    for (i, log) in logs.iter().enumerate() {
        for key in keys {
            assert!(!contains(log, key.as_bytes()), "a key is in the {} log", ["control plane", "data plane"][i]);
        }
    }
    let cp_text = String::from_utf8_lossy(&logs[0]);
    for rpc in ["CreateSubscription", "SuspendSubscription", "ResumeSubscription", "RegenerateSubscriptionKey"] {
        assert!(
            cp_text
                .lines()
                .any(|l| l.contains(rpc) && l.contains("resource=partner") && l.contains("management write")),
            "{rpc} is audited"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rules_a_subscription_keeps_through_the_cli_and_grpc() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let access = cp.access();
    let api = ["api", "put", "orders", "--path", "/orders", "--service-url", "https://backend.internal:8443"];
    assert!(ctl(&access, &api, None).await?.success);

    let refusal = |out: CtlOutput, says: &str| {
        assert!(!out.success, "expected a refusal: {}", out.stdout);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(says), "expected '{says}' in: {}", out.stderr);
    };
    refusal(ctl(&access, &["subscription", "create", "p", "--api", "nope"], None).await?, "API 'nope' not found");
    refusal(ctl(&access, &["subscription", "create", "a b", "--all-apis"], None).await?, "is invalid");
    // A scope is chosen on purpose: a key for every API is never made by leaving a flag out.
    let out = ctl(&access, &["subscription", "create", "p"], None).await?;
    assert!(!out.success && out.stderr.contains("--api"), "{}", out.stderr);
    assert!(ctl(&access, &["subscription", "create", "p", "--api", "orders"], None).await?.success);
    refusal(ctl(&access, &["subscription", "create", "p", "--all-apis"], None).await?, "exists already");
    refusal(ctl(&access, &["subscription", "suspend", "nope"], None).await?, "not found");
    refusal(
        ctl(&access, &["api", "update", "orders", "--subscription-key-header", "Content-Length"], None).await?,
        "needs this header itself",
    );

    // The API cannot go while a subscription is scoped to it: named in the message and in the
    // structured details.
    refusal(ctl(&access, &["api", "delete", "orders"], None).await?, "subscriptions scoped to it: p");
    let mut m = cp.management().await?;
    let status = m.delete_api(pb::DeleteApiRequest { id: "orders".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let failure = status.get_details_precondition_failure().expect("google.rpc.PreconditionFailure details");
    let subjects: Vec<String> = failure.violations.into_iter().map(|v| v.subject).collect();
    assert_eq!(subjects, ["subscriptions/p"]);
    let status = m
        .regenerate_subscription_key(pb::RegenerateSubscriptionKeyRequest { name: "p".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = m
        .create_subscription(pb::CreateSubscriptionRequest { name: "p".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    // update turns the requirement on and off; a put without it says it turned it off.
    let out = ctl(&access, &["-o", "json", "api", "update", "orders", "--subscription-required", "true"], None).await?;
    assert_eq!(json(&out)["subscription_required"], true);
    let out = ctl(&access, &api, None).await?;
    assert!(out.success && out.stderr.contains("subscription key not required"), "{}", out.stderr);
    let etag = json(&ctl(&access, &["-o", "json", "subscription", "show", "p"], None).await?)["etag"].clone();
    let stale = ["subscription", "suspend", "p", "--if-match", "1"];
    refusal(ctl(&access, &stale, None).await?, "changed since it was read");
    let current = ["subscription", "suspend", "p", "--if-match", etag.as_str().unwrap()];
    assert!(ctl(&access, &current, None).await?.success);

    // Deleted, the subscription no longer holds the API.
    let out = json(&ctl(&access, &["-o", "json", "subscription", "delete", "p"], None).await?);
    assert_eq!(out["deleted"], "p");
    assert!(ctl(&access, &["api", "delete", "orders"], None).await?.success);
    Ok(())
}
