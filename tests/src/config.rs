//! Small builders for configuration TOML used by many tests.
//!
//! Every listener binds `127.0.0.1:0`; tests read the real port from the `listening` event.

/// A `[[listeners]]` table named `name` on an OS-chosen port.
pub fn listener(name: &str) -> String {
    format!("[[listeners]]\nname = \"{name}\"\nbind = \"127.0.0.1:0\"\n\n")
}

/// One listener `public` and one API `api` whose `ANY /{proxy+}` and `ANY /` routes proxy to
/// `upstream_url` (no path: the request path is forwarded), plus `extra` TOML appended at the
/// top level before the API (e.g. a `[limits]` table).
pub fn proxy_all(upstream_url: &str, extra: &str) -> String {
    proxy_all_with(upstream_url, extra, "")
}

/// Like [`proxy_all`], with `integration_extra` lines added to the http integration table.
pub fn proxy_all_with(upstream_url: &str, extra: &str, integration_extra: &str) -> String {
    format!(
        "{extra}\n{listener}[[apis]]\nid = \"api\"\n\n\
         [[apis.routes]]\nroute = \"ANY /{{proxy+}}\"\nintegration = \"up\"\n\n\
         [[apis.routes]]\nroute = \"ANY /\"\nintegration = \"up\"\n\n\
         [apis.integrations.up]\ntype = \"http\"\nurl = \"{upstream_url}\"\n{integration_extra}\n",
        listener = listener("public"),
    )
}

/// One listener `public` and an API with a single mock route `GET /hello` answering `hello`,
/// plus `extra` top-level TOML.
pub fn mock_hello(extra: &str) -> String {
    format!(
        "{extra}\n{listener}[[apis]]\nid = \"api\"\n\n\
         [[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
         [apis.integrations.hello]\ntype = \"mock\"\nheaders = {{ \"content-type\" = \"text/plain\" }}\nbody = \"hello\"\n",
        listener = listener("public"),
    )
}
