//! The web console (`/console/` on the control plane's gRPC listener, same TLS) driven in a real
//! browser: Debian's chromium through chromium-driver, against a real `gatehouse-cp`, a real
//! `gatehouse-dp` and an mTLS backend that reports which client certificate it saw. The operator
//! signs in, uploads a PFX (first with a wrong password), binds it to an API, sees the backend get
//! it, is refused its deletion while the API uses it, unbinds it and deletes it. A gateway token
//! cannot sign in and a write without the CSRF token is refused.
//!
//! Every page the operator sees is saved as a PNG under `target/console-screenshots/`, so a person
//! can look at the console without running it.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use gatehouse_proto::v1 as pb;
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::eventually;
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;
use gatehouse_tests::process::{ControlPlane, DataPlane};
use gatehouse_tests::requests::upload;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Where Debian's chromium and chromium-driver packages put the browser and its WebDriver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to start, and a page to load after a click.
const PAGE: Duration = Duration::from_secs(30);
/// How long data planes may take to apply a change.
const ROLLOUT: Duration = Duration::from_secs(15);

/// The console's navigation, on every signed-in page.
const NAV: [&str; 6] =
    ["#nav-certificates", "#nav-ca-certificates", "#nav-apis", "#nav-hostnames", "#nav-subscriptions", "#nav-gateways"];

/// A form post from the page's own origin (so with its session cookie) but without the console's
/// CSRF field; answers `{status, body}`.
const POST_FROM_THE_PAGE: &str = r#"
const [url, body, done] = arguments;
fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body })
  .then(async (response) => done({ status: response.status, body: await response.text() }))
  .catch((error) => done({ status: 0, body: String(error) }));
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_uploads_binds_and_deletes_a_client_certificate_in_the_console() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("Console Test CA")?;
    let ca_file = ca.write_pem(dir.path(), "backend-ca.pem")?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    let backend = EchoBackend::start(&ca.server(&["localhost"])?, ClientAuth::TrustedBy(ca.der())).await?;
    let dp = DataPlane::start(&cp.access(), "dp-console", Some(&ca_file)).await?;
    // Connected before the first write, so the console's rollout report counts it.
    wait_acked(&mut m, &[&dp.name], 0, ROLLOUT).await?;
    let client = ca.client("console-client")?;
    let pfx = dir.path().join("console-client.pfx");
    std::fs::write(&pfx, client.pfx("right-password")?)?;
    let browser = Browser::start(&format!("https://{}", cp.addr)).await?;

    // Signing in: the console's root leads there; an unknown token is refused on the page.
    browser.open("/console/").await?;
    browser.find("form#sign-in").await?;
    assert_eq!(browser.path().await?, "/console/sign-in");
    browser.screenshot("01-sign-in").await?;
    browser.sign_in("not-a-token").await?;
    assert_contains(&browser.text("#sign-in-error").await?, &["invalid or revoked token"]);
    browser.screenshot("02-sign-in-error").await?;
    browser.sign_in(&cp.access().operator_token()?).await?;
    assert_eq!(browser.path().await?, "/console/certificates");
    for link in NAV {
        browser.find(link).await?;
    }
    browser.open("/console/").await?;
    assert_eq!(browser.path().await?, "/console/certificates", "signed in, the root leads to the certificates");

    // A wrong password: said beside the file field, and nothing stored.
    browser.upload_certificate("console-client", &pfx, "wrong-password").await?;
    assert_contains(&browser.text("#cert-pfx-error").await?, &["password"]);
    assert!(browser.all("#certificates tr[data-id]").await?.is_empty(), "the list shows a refused upload");
    browser.screenshot("03-certificates-wrong-password").await?;
    let listed = m.list_certificates(pb::ListCertificatesRequest {}).await?.into_inner();
    assert!(listed.certificates.is_empty(), "a refused upload stored something: {listed:?}");
    assert_eq!(listed.revision, 0, "a refused upload made a revision");

    // The right one: listed with its real thumbprint, the last four characters stressed.
    browser.upload_certificate("console-client", &pfx, "right-password").await?;
    assert_contains(&browser.text("#notice").await?, &["console-client", "uploaded", "1 of 1 data planes"]);
    let stored = m.get_certificate(pb::GetCertificateRequest { id: "console-client".into() }).await?.into_inner();
    assert_eq!(stored.thumbprint, client.thumbprint.as_str());
    let row = r#"#certificates tr[data-id="console-client"]"#;
    assert_eq!(browser.text(&format!("{row} td.thumbprint")).await?, client.thumbprint.as_str());
    assert_eq!(browser.text(&format!("{row} td.thumbprint strong")).await?, &client.thumbprint.as_str()[36..]);
    assert_eq!(browser.text(&format!("{row} td.subject")).await?, stored.subject);
    assert_eq!(browser.text(&format!("{row} td.used-by")).await?, "");
    browser.screenshot("04-certificates").await?;

    // The backend's CA, for the API's backend trust.
    browser.click_through("#nav-ca-certificates").await?;
    browser.fill("#ca-id", "backend-ca").await?;
    browser.find("#ca-file").await?.send_keys(&ca_file.display().to_string()).await?;
    browser.click_through("#ca-upload").await?;
    assert_contains(&browser.text("#notice").await?, &["backend-ca"]);
    browser.find(r#"#ca-certificates tr[data-id="backend-ca"]"#).await?;
    browser.screenshot("05-ca-certificates").await?;

    // A new API in front of the backend.
    browser.click_through("#nav-apis").await?;
    browser.find("table#apis").await?;
    browser.click_through("a#new-api").await?;
    browser.fill("#api-id", "orders").await?;
    browser.fill("#api-display-name", "Orders").await?;
    browser.fill("#api-path", "/orders").await?;
    browser.fill("#api-service-url", &backend.url()).await?;
    browser.screenshot("06-api-new").await?;
    browser.click_through("#api-save").await?;
    assert_eq!(browser.path().await?, "/console/apis/orders");
    assert_contains(&browser.text("#notice").await?, &["orders"]);

    // Its security section: the client certificate, offered as subject and thumbprint, and the CA.
    let option = browser.text(r#"#client-cert option[value="console-client"]"#).await?;
    let offered = format!("{} — {}", stored.subject, stored.thumbprint);
    assert!(option.starts_with(&offered), "the certificate is offered as {option:?}, not as {offered:?}");
    browser.find("#client-cert").await?.select_by_value("console-client").await?;
    browser.click_through("#credentials-save").await?;
    assert_contains(&browser.text("#notice").await?, &["orders"]);
    assert_eq!(browser.find("#client-cert").await?.prop("value").await?.as_deref(), Some("console-client"));
    let backend_ca = browser.find(r#"input.ca[value="backend-ca"]"#).await?;
    if !backend_ca.is_selected().await? {
        backend_ca.click().await?;
    }
    browser.click_through("#trust-save").await?;
    assert!(browser.find(r#"input.ca[value="backend-ca"]"#).await?.is_selected().await?);
    browser.screenshot("07-api-edit").await?;
    let api = m.get_api(pb::GetApiRequest { id: "orders".into() }).await?.into_inner();
    assert_eq!(api.client_certificate_thumbprint, client.thumbprint.as_str());
    assert_eq!(api.backend_tls.map(|t| t.ca_certificate_ids).unwrap_or_default(), ["backend-ca"]);

    // Through the data plane, the backend is shown the uploaded certificate.
    let http = HttpClient::default();
    let (http, url, expected) = (&http, &dp.url("/orders/1"), client.thumbprint.as_str());
    eventually("the backend to be shown the bound certificate", ROLLOUT, || async move {
        Ok(http.get(url).await.is_ok_and(|reply| reply.presented() == Some(expected)))
    })
    .await?;

    // A policy that is not XML: refused, saying where.
    browser.click_through("a#edit-policy").await?;
    browser.fill("#policy-xml", "<policies><inbound>").await?;
    browser.click_through("#policy-save").await?;
    assert_contains(&browser.text("#policy-error").await?, &["line", "column"]);
    browser.screenshot("08-policy-error").await?;

    // Deleting the certificate while the API uses it: warned, then refused, naming the API.
    browser.click_through("#nav-certificates").await?;
    assert_eq!(browser.text(&format!("{row} td.used-by")).await?, "orders");
    browser.click_through(&format!("{row} a.delete")).await?;
    browser.find("#delete-question").await?;
    browser.find("#in-use-warning").await?;
    assert_eq!(browser.texts("#used-by li").await?, ["orders"]);
    browser.screenshot("09-delete-confirmation").await?;
    browser.click_through("#confirm-delete").await?;
    browser.find("#delete-question").await?;
    assert_contains(&browser.text("#error").await?, &["orders"]);
    browser.screenshot("10-delete-refused").await?;
    m.get_certificate(pb::GetCertificateRequest { id: "console-client".into() }).await?;

    // Unbound, it deletes.
    browser.open("/console/apis/orders").await?;
    browser.find("#client-cert").await?.select_by_value("").await?;
    browser.click_through("#credentials-save").await?;
    assert_contains(&browser.text("#notice").await?, &["orders"]);
    assert_eq!(browser.find("#client-cert").await?.prop("value").await?.as_deref(), Some(""));
    browser.click_through("#nav-certificates").await?;
    assert_eq!(browser.text(&format!("{row} td.used-by")).await?, "");
    browser.click_through(&format!("{row} a.delete")).await?;
    assert!(browser.all("#in-use-warning").await?.is_empty(), "an unused certificate is said to be in use");
    browser.click_through("#confirm-delete").await?;
    assert_eq!(browser.path().await?, "/console/certificates");
    assert_contains(&browser.text("#notice").await?, &["console-client"]);
    assert!(browser.all(row).await?.is_empty(), "the deleted certificate is still listed");
    browser.screenshot("11-certificate-deleted").await?;
    let listed = m.list_certificates(pb::ListCertificatesRequest {}).await?.into_inner();
    assert!(listed.certificates.is_empty(), "the deleted certificate is still stored: {listed:?}");

    // The data plane, having applied the last revision.
    wait_acked(&mut m, &[&dp.name], listed.revision, ROLLOUT).await?;
    browser.click_through("#nav-gateways").await?;
    {
        let (browser, revision) = (&browser, &listed.revision.to_string());
        // The page reloads itself every few seconds: read it again if a reload took the row away.
        eventually("the gateways page to show the applied revision", PAGE, || async move {
            let gateway = r#"#gateways tr[data-name="dp-console"]"#;
            let applied = browser.text(&format!("{gateway} td.applied-revision")).await;
            let state = browser.text(&format!("{gateway} td.state")).await;
            let digits = |text: &str| text.chars().filter(char::is_ascii_digit).collect::<String>();
            Ok(applied.is_ok_and(|a| digits(&a) == *revision) && state.is_ok_and(|s| !s.is_empty()))
        })
        .await?;
    }
    browser.find(r#"#gateways tr[data-name="dp-console"] td.last-seen"#).await?;
    browser.screenshot("12-gateways").await?;

    browser.click_through("#nav-hostnames").await?;
    browser.find("table#hostnames").await?;
    browser.screenshot("13-hostnames").await?;
    browser.click_through("#nav-subscriptions").await?;
    browser.find("table#subscriptions").await?;
    browser.screenshot("14-subscriptions").await?;
    browser.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_token_cannot_sign_in_and_a_write_without_the_csrf_token_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(&dir.path().join("cp")).await?;
    let mut m = cp.management().await?;
    let client = TestCa::new("Console CSRF CA")?.client("kept")?;
    m.upload_certificate(upload("kept", client.pfx("pw")?, "pw")).await?;
    let access = cp.access();
    let gateway_token = std::fs::read_to_string(access.gateway_token_file.as_ref().context("no gateway token")?)?;
    let browser = Browser::start(&format!("https://{}", cp.addr)).await?;

    // A data plane's token is refused, saying which role it has and which one the console needs.
    browser.open("/console/sign-in").await?;
    browser.sign_in(gateway_token.trim()).await?;
    assert_contains(&browser.text("#sign-in-error").await?, &["gateway role", "operator role"]);
    browser.screenshot("20-sign-in-gateway-token").await?;
    browser.open("/console/certificates").await?;
    assert_eq!(browser.path().await?, "/console/sign-in", "a gateway token opened the console");

    // The operator's session lives in a cookie the page's scripts cannot read.
    browser.sign_in(&access.operator_token()?).await?;
    assert_eq!(browser.path().await?, "/console/certificates");
    let cookies = browser.client.get_all_cookies().await?;
    ensure!(!cookies.is_empty(), "signed in without a cookie");
    let visible = browser.client.execute("return document.cookie", vec![]).await?;
    assert_eq!(visible.as_str(), Some(""), "scripts see the console's cookies {cookies:?}");
    assert!(cookies.iter().all(|c| c.http_only() == Some(true)), "a cookie is not HttpOnly: {cookies:?}");

    // A delete posted without the CSRF field, or with a forged one, is refused; nothing changes.
    for body in ["", "csrf=forged"] {
        let answer = browser
            .client
            .execute_async(POST_FROM_THE_PAGE, vec![json!("/console/certificates/kept/delete"), json!(body)])
            .await?;
        assert_eq!(answer["status"], 403, "a post with body {body:?}: {answer}");
        assert_contains(answer["body"].as_str().unwrap_or_default(), &["CSRF"]);
    }
    m.get_certificate(pb::GetCertificateRequest { id: "kept".into() }).await?;
    browser.open("/console/certificates").await?;
    browser.find(r#"#certificates tr[data-id="kept"]"#).await?;

    // Signed out, the console asks to sign in again.
    browser.click_through("#sign-out-submit").await?;
    browser.open("/console/certificates").await?;
    assert_eq!(browser.path().await?, "/console/sign-in", "the session outlived the sign-out");
    browser.screenshot("21-signed-out").await?;
    browser.close().await
}

/// Asserts that `text` contains each of `parts`, showing the text when not.
fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} is not in {text:?}");
    }
}

/// A chromium session on the console at `base` (`https://127.0.0.1:PORT`), through a
/// chromedriver of its own.
struct Browser {
    client: Client,
    base: String,
    screenshots: PathBuf,
    // Dropped after the client. Its process-group kill also ends a chromium whose session a
    // failed assertion left open.
    _driver: Chromedriver,
}

// === impl Browser ===

impl Browser {
    /// Starts chromedriver and a headless chromium session; fails naming the Debian packages when
    /// either is not installed.
    async fn start(base: &str) -> anyhow::Result<Self> {
        let driver = Chromedriver::start().await?;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // The control plane serves TLS from a CA it made itself.
                    "--ignore-certificate-errors",
                    "--window-size=1280,1000",
                ],
            }),
        );
        // The same, said the WebDriver way, which chromedriver also applies to its own checks.
        capabilities.insert("acceptInsecureCerts".into(), json!(true));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .with_context(|| format!("starting {CHROMIUM} through chromedriver"))?;
        Ok(Self { client, base: base.to_string(), screenshots: screenshot_dir()?, _driver: driver })
    }

    /// Opens `path` on the console and waits for it to load.
    async fn open(&self, path: &str) -> anyhow::Result<()> {
        Ok(self.client.goto(&format!("{}{path}", self.base)).await?)
    }

    /// The path of the page shown, e.g. `/console/certificates`.
    async fn path(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.path().to_string())
    }

    /// The element `css` selects on the page shown.
    async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let url = self.client.current_url().await?;
        self.client.find(Locator::Css(css)).await.with_context(|| format!("no {css} on {url}"))
    }

    /// Every element `css` selects.
    async fn all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    /// The text of the element `css` selects, as the browser renders it.
    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?.trim().to_string())
    }

    /// The text of every element `css` selects.
    async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let mut texts = Vec::new();
        for element in self.all(css).await? {
            texts.push(element.text().await?.trim().to_string());
        }
        Ok(texts)
    }

    /// Types `value` into the field `css`, replacing what it held.
    async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let field = self.find(css).await?;
        field.clear().await?;
        Ok(field.send_keys(value).await?)
    }

    /// Clicks `css` (a link or a submit button) and waits until the page it leads to has loaded.
    async fn click_through(&self, css: &str) -> anyhow::Result<()> {
        // A mark on the page shown tells it apart from the next one, even when both have the
        // same address (a form that re-renders itself).
        self.client.execute("window.gatehouseLeftPage = true", vec![]).await?;
        self.find(css).await?.click().await?;
        let client = &self.client;
        eventually(&format!("the page after clicking {css}"), PAGE, || async move {
            let script = "return window.gatehouseLeftPage === undefined && document.readyState === 'complete'";
            Ok(client.execute(script, vec![]).await.is_ok_and(|loaded| loaded == json!(true)))
        })
        .await?;
        Ok(())
    }

    /// Signs in with `token` on the sign-in page shown.
    async fn sign_in(&self, token: &str) -> anyhow::Result<()> {
        self.fill("#token", token).await?;
        self.click_through("#sign-in-submit").await
    }

    /// Uploads the PFX file at `pfx` as certificate `id` on the certificates page shown.
    async fn upload_certificate(&self, id: &str, pfx: &Path, password: &str) -> anyhow::Result<()> {
        self.fill("#cert-id", id).await?;
        // chromedriver sets a file input to the absolute paths sent to it.
        self.find("#cert-pfx").await?.send_keys(&pfx.display().to_string()).await?;
        self.fill("#cert-password", password).await?;
        self.click_through("#cert-upload").await
    }

    /// Saves the page shown as `target/console-screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        Ok(std::fs::write(self.screenshots.join(format!("{name}.png")), png)?)
    }

    /// Ends the session, so chromium exits on its own before chromedriver is killed.
    async fn close(self) -> anyhow::Result<()> {
        Ok(self.client.close().await?)
    }
}

/// `target/console-screenshots`, made if need be: the test runs as `target/<profile>/deps/console-*`.
fn screenshot_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe.ancestors().nth(3).with_context(|| format!("no target folder above {}", exe.display()))?;
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A chromedriver child process on a loopback port it picked itself; killed when dropped, with
/// the chromium it started.
struct Chromedriver {
    process: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
}

// === impl Chromedriver ===

impl Chromedriver {
    /// Starts chromedriver on a free port and waits until it answers.
    async fn start() -> anyhow::Result<Self> {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            ensure!(
                Path::new(path).is_file(),
                "{path} is missing: the console tests need Debian's chromium and chromium-driver packages \
                 (install {package}; bash .ci/deps installs both)"
            );
        }
        let logs = if std::env::var_os("GATEHOUSE_TEST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() };
        let mut command = std::process::Command::new(CHROMEDRIVER);
        command.arg("--port=0").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(logs);
        // A process group of its own, which the chromium it starts joins: dropping the guard
        // ends them all, also when a failed assertion left the session open.
        command.process_group(0);
        let mut process =
            tokio::process::Command::from(command).kill_on_drop(true).spawn().context("starting chromedriver")?;
        let mut lines = BufReader::new(process.stdout.take().expect("piped stdout")).lines();
        let port = tokio::time::timeout(PAGE, read_port(&mut lines))
            .await
            .map_err(|_| anyhow!("chromedriver did not start within {PAGE:?}"))??;
        // Keep draining stdout so chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let driver = Self { process, url: format!("http://127.0.0.1:{port}") };
        let (http, status) = (&HttpClient::default(), &format!("{}/status", driver.url));
        eventually("chromedriver to answer", PAGE, || async move {
            Ok(http.get(status).await.is_ok_and(|reply| reply.status.is_success()))
        })
        .await?;
        Ok(driver)
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port 45607." line.
async fn read_port(lines: &mut Lines<BufReader<ChildStdout>>) -> anyhow::Result<u16> {
    while let Some(line) = lines.next_line().await? {
        if line.contains("started successfully")
            && let Some((_, port)) = line.rsplit_once("on port ")
        {
            return port.trim_end_matches('.').parse().with_context(|| format!("no port in {line:?}"));
        }
    }
    bail!("chromedriver exited before it was listening")
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Some(pid) = self.process.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }
}
