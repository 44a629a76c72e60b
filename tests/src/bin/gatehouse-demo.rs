//! `gatehouse-demo`: Gatehouse up and doing its job on loopback, in one process. A control
//! plane (sled in a local folder), a data plane, and a backend that requires a client
//! certificate; a PFX uploaded and bound; a request that shows which certificate the backend
//! saw; a switch to a second certificate; then it stays up for you to try.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use gatehouse_control_plane::tokens::Role;
use gatehouse_control_plane::{ControlPlane, ControlPlaneConfig};
use gatehouse_data_plane::{DataPlane, DataPlaneConfig};
use gatehouse_proto::v1::{self as pb, management_client::ManagementClient};
use gatehouse_tests::backend::{ClientAuth, EchoBackend};
use gatehouse_tests::http_client::HttpClient;
use gatehouse_tests::pki::TestCa;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-demo",
    version = gatehouse_shared::VERSION,
    about = "Runs a control plane, a data plane and an mTLS backend on loopback, and shows a client certificate switch"
)]
struct Args {
    /// Folder for the control plane's sled database and the demo PKI.
    #[arg(long, env = "GATEHOUSE_DEMO_DIR", default_value = "demo-data")]
    data_dir: PathBuf,
    /// Control plane gRPC address.
    #[arg(long, default_value = "127.0.0.1:7400")]
    control_plane_listen: SocketAddr,
    /// Data plane address for API clients.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data plane /healthz and /ready.
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin_listen: SocketAddr,
    /// Exit after the demonstration instead of staying up.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run(args).await {
        eprintln!("gatehouse-demo: {error:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let pki_dir = args.data_dir.join("pki");
    std::fs::create_dir_all(&pki_dir).with_context(|| format!("cannot create {}", pki_dir.display()))?;

    // 1. A demo PKI: one CA for the backend's server certificate and both client certificates.
    let ca = TestCa::new("Gatehouse Demo CA")?;
    let ca_file = ca.write_pem(&pki_dir, "demo-ca.pem")?;
    let backend_cert = ca.server(&["localhost"])?;
    let clients = [("demo-client-a", ca.client("demo-client-a")?), ("demo-client-b", ca.client("demo-client-b")?)];
    let password = "demo-password";
    std::fs::write(pki_dir.join("password.txt"), format!("{password}\n"))?;
    for (id, cert) in &clients {
        std::fs::write(pki_dir.join(format!("{id}.pfx")), cert.pfx(password)?)?;
    }

    // 2. The control plane, on sled in a local folder.
    let control_plane =
        ControlPlane::bind(&ControlPlaneConfig::new(args.data_dir.join("control-plane"), args.control_plane_listen))
            .await?;
    let cp_addr = control_plane.local_addr();
    let cp_url = format!("https://{cp_addr}");
    let access = control_plane.access().clone();
    let ca_file_cp = access.ca_file.clone().context("the control plane made no CA")?;
    let operator_token_file = access.initial_token_file.clone().context("no operator token file")?;
    // The demo's data plane gets a gateway token of its own (made anew on every run).
    let tokens = control_plane.tokens().clone();
    let _ = tokens.revoke("demo-data-plane", false).await;
    let (_, gateway_token) = tokens.create("demo-data-plane", Role::Gateway, None).await?;
    tokio::spawn(control_plane.serve(std::future::pending()));

    // 3. A backend that only talks to clients with a certificate from the demo CA.
    let backend = EchoBackend::start(&backend_cert, ClientAuth::TrustedBy(ca.der())).await?;

    // 4. A data plane, trusting the demo CA for backends.
    let data_plane = DataPlane::bind(DataPlaneConfig {
        control_plane_ca: Some(ca_file_cp.clone()),
        token: Some(gateway_token),
        name: Some("demo-data-plane".into()),
        backend_ca_file: Some(ca_file.clone()),
        ..DataPlaneConfig::new(cp_url.clone(), args.listen, args.admin_listen)
    })
    .await?;
    let (dp_addr, admin_addr) = (data_plane.local_addr(), data_plane.admin_addr());
    let routing = data_plane.routing().clone();
    tokio::spawn(data_plane.serve(std::future::pending()));

    println!("control plane   {cp_url}   (gRPC over TLS; data in {})", args.data_dir.join("control-plane").display());
    println!("data plane      http://{dp_addr}   (admin http://{admin_addr}/ready)");
    println!("backend         {}   (requires a client certificate from {})", backend.url(), ca_file.display());
    println!();

    // 5. Upload both PFX files, create the API, bind certificate A.
    let channel = gatehouse_shared::client::endpoint(&cp_url, Some(&ca_file_cp))?.connect().await?;
    let operator_token = gatehouse_shared::client::read_token_file(&operator_token_file)?;
    let mut management =
        ManagementClient::with_interceptor(channel, gatehouse_shared::client::BearerToken::new(Some(&operator_token))?);
    for (id, cert) in &clients {
        let uploaded = management
            .upload_certificate(pb::UploadCertificateRequest {
                id: (*id).into(),
                pfx: cert.pfx(password)?,
                password: password.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        println!("uploaded {id}: {}  thumbprint {}", uploaded.subject, uploaded.thumbprint);
    }
    management
        .put_api(pb::PutApiRequest {
            id: "demo".into(),
            display_name: "Demo API".into(),
            path: "/demo".into(),
            service_url: backend.url(),
            credentials: None,
            ..Default::default()
        })
        .await?;
    let http = HttpClient::default();
    let url = format!("http://{dp_addr}/demo/hello?from=gatehouse");
    for (id, cert) in &clients {
        let started = Instant::now();
        let api = management
            .set_api_credentials(pb::SetApiCredentialsRequest {
                api_id: "demo".into(),
                credential: Some(pb::set_api_credentials_request::Credential::CertificateId((*id).into())),
                ..Default::default()
            })
            .await?
            .into_inner();
        routing.watch().wait_for(|applied| *applied >= api.revision).await?;
        let applied_in = started.elapsed();
        let reply = http.get(&url).await?;
        let seen = reply.presented().unwrap_or("none");
        println!();
        println!(
            "bound API 'demo' to {id} (revision {}); the data plane applied it {applied_in:.1?} after the call",
            api.revision
        );
        println!("GET {url} -> {}", reply.status);
        println!(
            "  the backend saw client certificate {seen}{}",
            if seen == cert.thumbprint.as_str() { format!(" = {id}") } else { " (unexpected!)".into() }
        );
        anyhow::ensure!(seen == cert.thumbprint.as_str(), "the backend saw {seen}, expected {}", cert.thumbprint);
    }

    println!();
    // Absolute paths, so the lines below work as printed from any folder of the workspace.
    let absolute = |path: &std::path::Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    println!();
    println!("Try it (one export line, then short commands):");
    println!(
        "  export GATEHOUSE_CTL_SERVER={cp_url} GATEHOUSE_CTL_CA_FILE={} GATEHOUSE_CTL_TOKEN_FILE={}",
        absolute(&ca_file_cp).display(),
        absolute(&operator_token_file).display()
    );
    println!("  alias gatehousectl='cargo run -q --bin gatehousectl --'");
    println!("  curl -i '{url}'");
    println!("  gatehousectl cert list");
    println!("  gatehousectl api show demo");
    println!("  gatehousectl gateway list");
    println!("  # switch back to certificate A:");
    println!("  gatehousectl api credentials demo --client-cert demo-client-a");
    println!("  # rotate: upload B's file under the id demo-client-a; the API follows the id:");
    println!(
        "  gatehousectl cert upload demo-client-a --pfx {} --password-file {}",
        absolute(&pki_dir.join("demo-client-b.pfx")).display(),
        absolute(&pki_dir.join("password.txt")).display()
    );
    println!();
    println!("Web console: {cp_url}/console/");
    println!(
        "  sign in with the operator token in {}; the browser does not know the demo's CA ({}), so accept its warning or import that file",
        absolute(&operator_token_file).display(),
        absolute(&ca_file_cp).display()
    );
    if args.once {
        return Ok(());
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
