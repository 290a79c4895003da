//! Reverse-proxy files, one per environment: each site's and tool's host
//! name proxied to its machine, and the environment's own host name to
//! bess's homepage of it.

use std::fmt::Write;
use std::net::IpAddr;

/// Where one host name goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `<site>.<env>.<platform>.<domain>`.
    pub host: String,
    pub ip: std::net::Ipv4Addr,
    pub port: u16,
}

/// What a proxy file says for one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedEnvironment {
    pub platform: String,
    pub environment: String,
    /// `<env>.<platform>.<domain>`, proxied to the homepage.
    pub homepage_host: String,
    /// Sites and tools.
    pub upstreams: Vec<Upstream>,
    /// Where the proxy listens.
    pub listen: (IpAddr, u16),
    /// `bess serve`'s base URL, `http://127.0.0.1:8080`.
    pub serve_url: String,
}

/// `<platform>.<env>.conf` (labels hold no dots, so names never collide).
pub fn proxy_file_name(platform: &str, env: &str) -> String {
    format!("{platform}.{env}.conf")
}

fn listen_text((address, port): (IpAddr, u16)) -> String {
    match address {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

fn header(p: &ProxiedEnvironment, comment: &str) -> String {
    format!(
        "{comment} Written by bess for environment {} of platform {}:\n\
         {comment} `bess host bind-proxy` writes it, `bess host unbind-proxy` removes it.\n",
        p.environment, p.platform
    )
}

/// The headers every upstream gets, so applications see the name and
/// client the browser used.
const NGINX_HEADERS: &str = concat!(
    "        proxy_set_header Host $host;\n",
    "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n",
    "        proxy_set_header X-Forwarded-Proto $scheme;\n",
);

/// The nginx file (its content belongs in `http {}`).
pub fn nginx_file(p: &ProxiedEnvironment) -> String {
    let listen = listen_text(p.listen);
    let mut out = header(p, "#");
    for u in &p.upstreams {
        let _ = write!(
            out,
            "server {{\n    listen {listen};\n    server_name {};\n    location / {{\n        proxy_pass http://{}:{};\n{NGINX_HEADERS}    }}\n}}\n",
            u.host, u.ip, u.port
        );
    }
    let serve = p.serve_url.trim_end_matches('/');
    let _ = write!(
        out,
        "server {{\n    listen {listen};\n    server_name {host};\n\
         \x20   location = / {{\n        proxy_pass {serve}/env/{platform}/{env}/;\n{NGINX_HEADERS}    }}\n\
         \x20   location /env/ {{\n        proxy_pass {serve};\n{NGINX_HEADERS}    }}\n\
         \x20   location / {{\n        return 404;\n    }}\n}}\n",
        host = p.homepage_host,
        platform = p.platform,
        env = p.environment,
    );
    out
}

/// The apache file (needs mod_proxy, mod_proxy_http and mod_headers).
pub fn apache_file(p: &ProxiedEnvironment) -> String {
    let listen = listen_text(p.listen);
    let mut out = header(p, "#");
    let common = "    ProxyPreserveHost On\n    RequestHeader set X-Forwarded-Proto expr=%{REQUEST_SCHEME}\n";
    for u in &p.upstreams {
        let target = format!("http://{}:{}/", u.ip, u.port);
        let _ = write!(
            out,
            "<VirtualHost {listen}>\n    ServerName {}\n{common}    ProxyPass \"/\" \"{target}\"\n    ProxyPassReverse \"/\" \"{target}\"\n</VirtualHost>\n",
            u.host
        );
    }
    let serve = p.serve_url.trim_end_matches('/');
    // Without a backreference ProxyPassMatch would append the path again.
    let _ = write!(
        out,
        "<VirtualHost {listen}>\n    ServerName {host}\n{common}\
         \x20   ProxyPassMatch \"^/()$\" \"{serve}/env/{platform}/{env}/$1\"\n\
         \x20   ProxyPass \"/env/\" \"{serve}/env/\"\n\
         \x20   ProxyPassReverse \"/env/\" \"{serve}/env/\"\n</VirtualHost>\n",
        host = p.homepage_host,
        platform = p.platform,
        env = p.environment,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> ProxiedEnvironment {
        ProxiedEnvironment {
            platform: "paas".into(),
            environment: "1161".into(),
            homepage_host: "1161.paas.example.test".into(),
            upstreams: vec![Upstream {
                host: "v5.1161.paas.example.test".into(),
                ip: "10.77.0.2".parse().unwrap(),
                port: 8080,
            }],
            listen: ("127.0.0.1".parse().unwrap(), 8088),
            serve_url: "http://127.0.0.1:8080/".into(),
        }
    }

    #[test]
    fn nginx_proxies_sites_and_the_homepage() {
        let text = nginx_file(&env());
        assert!(text.contains("server_name v5.1161.paas.example.test;\n    location / {\n        proxy_pass http://10.77.0.2:8080;\n"));
        assert!(text.contains("\n        proxy_set_header X-Forwarded-Proto $scheme;\n    }\n"));
        assert!(
            text.contains(
                "location = / {\n        proxy_pass http://127.0.0.1:8080/env/paas/1161/;"
            )
        );
        assert_eq!(text.matches("listen 127.0.0.1:8088;").count(), 2);
    }

    #[test]
    fn apache_proxies_sites_and_the_homepage() {
        let text = apache_file(&env());
        assert!(
            text.contains(
                "<VirtualHost 127.0.0.1:8088>\n    ServerName v5.1161.paas.example.test\n"
            )
        );
        assert!(text.contains("ProxyPass \"/\" \"http://10.77.0.2:8080/\""));
        assert!(
            text.contains("ProxyPassMatch \"^/()$\" \"http://127.0.0.1:8080/env/paas/1161/$1\"")
        );
        let v6 = ProxiedEnvironment {
            listen: ("::1".parse().unwrap(), 80),
            ..env()
        };
        assert!(apache_file(&v6).contains("<VirtualHost [::1]:80>"));
    }
}
