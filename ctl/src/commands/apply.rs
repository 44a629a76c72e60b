//! `diff` and `apply`: send a declaration file to ApplyConfiguration, as a dry run or for real.

use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use gatehouse_proto::v1 as pb;

use crate::args::{DeclarationFile, Format};
use crate::connection::{Client, Server, connect, status};
use crate::declaration::{self, CaReference, Declaration};
use crate::input::read_declaration;
use crate::output;

/// `apply`: prints the changes and the revision; returns that revision when it changed
/// something (for --wait).
pub async fn apply(server: &Server, format: Format, file: DeclarationFile) -> anyhow::Result<Option<u64>> {
    let applied = send(server, file, false).await?;
    output::print_applied(format, &applied);
    Ok((!applied.changes.is_empty()).then_some(applied.revision))
}

/// `diff`: prints what `apply` would change; exits 1 when something would, as diff(1) does.
pub async fn diff(server: &Server, format: Format, file: DeclarationFile) -> anyhow::Result<ExitCode> {
    let planned = send(server, file, true).await?;
    output::print_applied(format, &planned);
    Ok(if planned.changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Reads, checks and sends the declaration; a refusal lists every error, one line each.
async fn send(server: &Server, file: DeclarationFile, dry_run: bool) -> anyhow::Result<pb::ApplyConfigurationResponse> {
    let stdin = file.file.as_os_str() == "-";
    let origin = if stdin { "the declaration on stdin".to_string() } else { file.file.display().to_string() };
    let text = read_declaration(&file.file)?;
    let declaration = Declaration::parse(&text, &origin)?;
    // Paths in the file are relative to its folder (to the current one for stdin).
    let base = if stdin { Path::new(".") } else { file.file.parent().unwrap_or(Path::new(".")) };
    let (request, references) = declaration::request(declaration, &origin, base, file.prune, dry_run)?;
    let mut client = connect(server).await?;
    check_ca_references(&mut client, &references, &origin).await?;
    match client.apply_configuration(request).await {
        Ok(response) => Ok(response.into_inner()),
        Err(refusal) => Err(refused(refusal, &origin)),
    }
}

/// The thumbprints of CA certificates declared by reference, which the request cannot carry.
async fn check_ca_references(client: &mut Client, references: &[CaReference], origin: &str) -> anyhow::Result<()> {
    if references.is_empty() {
        return Ok(());
    }
    let stored = client.list_ca_certificates(pb::ListCaCertificatesRequest {}).await.map_err(status)?.into_inner();
    let mut lines = Vec::new();
    for reference in references {
        let field = format!("ca-certificate/{}", reference.id);
        match stored.ca_certificates.iter().find(|ca| ca.id == reference.id) {
            None => lines.push(format!("{field}: not found (give its certificate or certificateFile to create it)")),
            Some(ca) if !ca.thumbprint.eq_ignore_ascii_case(reference.thumbprint.as_str()) => lines.push(format!(
                "{field}: the thumbprint is {}, but the stored certificate's is {} (give its certificate or certificateFile to replace it)",
                reference.thumbprint, ca.thumbprint
            )),
            Some(_) => {}
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    Err(declaration::error_list(&format!("{origin} was not sent"), &lines))
}

/// Every error of a refused declaration, one line each (`KIND/ID: why`), from the BadRequest
/// field violations; any other failure as usual.
fn refused(refusal: tonic::Status, origin: &str) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    if refusal.code() == tonic::Code::Unimplemented {
        return anyhow!("this control plane cannot apply declarations (no ApplyConfiguration): upgrade it");
    }
    let violations = refusal.get_details_bad_request().map(|details| details.field_violations).unwrap_or_default();
    if violations.is_empty() {
        return status(refusal);
    }
    let lines: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
    declaration::error_list(&format!("{origin} was refused, nothing changed"), &lines)
}
