//! `bess repo ingest --remote URL`: upload from a build server or CI to `bess serve`.

use base64::Engine;
use std::path::PathBuf;

/// Uploads each `.deb` to `URL/api/v1/packages`; stops at the first refusal.
pub fn upload(
    url: &str,
    user: &str,
    files: &[PathBuf],
    dists: &[String],
    component: Option<&str>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let password = std::env::var("BESS_PASSWORD").map_err(|_| {
        anyhow::anyhow!(
            "set BESS_PASSWORD to the password of `{user}` (it is never read from the command line)"
        )
    })?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let agent = agent()?;
    let mut results = Vec::new();
    for file in files {
        let body = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let endpoint = endpoint(url, file, dists, component);
        let mut response = agent
            .post(&endpoint)
            .header("Authorization", &format!("Basic {token}"))
            .header("Content-Type", "application/vnd.debian.binary-package")
            .send(&body[..])
            .map_err(|e| anyhow::anyhow!("{}: cannot upload to {url}: {e}", file.display()))?;
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        if !status.is_success() {
            let message = value
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or(text.trim());
            anyhow::bail!(
                "{}: the server refused the upload ({status}): {message}",
                file.display()
            );
        }
        results.push(value);
    }
    Ok(results)
}

/// Uploads one box to `URL/api/v1/boxes/<name>/<version>/<provider>?arch=…`,
/// streaming the file (boxes can be gigabytes).
pub fn upload_box(
    url: &str,
    user: &str,
    file: &std::path::Path,
    request: &crate::ops::BoxAddRequest,
) -> anyhow::Result<serde_json::Value> {
    let password = std::env::var("BESS_PASSWORD").map_err(|_| {
        anyhow::anyhow!(
            "set BESS_PASSWORD to the password of `{user}` (it is never read from the command line)"
        )
    })?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    // Checked here too, so the parts are plain URL path segments.
    crate::boxes::BoxIdentity::new(
        &request.name,
        &request.version,
        &request.provider,
        &request.arch,
    )?;
    let body = std::fs::File::open(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let endpoint = format!(
        "{}/api/v1/boxes/{}/{}/{}?arch={}",
        url.trim_end_matches('/'),
        request.name,
        encode(&request.version),
        encode(&request.provider),
        encode(&request.arch)
    );
    let mut response = agent()?
        .post(&endpoint)
        .header("Authorization", &format!("Basic {token}"))
        .header("Content-Type", "application/octet-stream")
        .send(body)
        .map_err(|e| anyhow::anyhow!("{}: cannot upload to {url}: {e}", file.display()))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
    if !status.is_success() {
        let message = value
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or(text.trim());
        anyhow::bail!(
            "{}: the server refused the upload ({status}): {message}",
            file.display()
        );
    }
    Ok(value)
}

/// An HTTP(S) client; `$BESS_CA_CERT` (a PEM file) replaces the public roots
/// for servers with a private certificate authority.
fn agent() -> anyhow::Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(path) = std::env::var_os("BESS_CA_CERT") {
        let pem = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("BESS_CA_CERT {}: {e}", path.to_string_lossy()))?;
        let cert = ureq::tls::Certificate::from_pem(&pem)
            .map_err(|e| anyhow::anyhow!("BESS_CA_CERT {}: {e}", path.to_string_lossy()))?;
        let roots = ureq::tls::RootCerts::new_with_certs(&[cert]);
        config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
    }
    Ok(config.build().into())
}

fn endpoint(
    url: &str,
    file: &std::path::Path,
    dists: &[String],
    component: Option<&str>,
) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("upload.deb");
    let mut query = vec![format!("filename={}", encode(name))];
    query.extend(dists.iter().map(|d| format!("dist={}", encode(d))));
    if let Some(component) = component {
        query.push(format!("component={}", encode(component)));
    }
    format!(
        "{}/api/v1/packages?{}",
        url.trim_end_matches('/'),
        query.join("&")
    )
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
