//! Edge settings: the PROXY protocol on listeners, trusted proxies for the client address, and
//! the access log.

use std::path::PathBuf;

use ipnet::IpNet;
use toml::Spanned;

use crate::access_log::{parse_fields, parse_template, AccessLogPlan, LineFormat, LogTarget};
use crate::compile::{ranged, span};
use crate::error::{ConfigError, Source};
use crate::file::{AccessLogSection, ClientAddressSection, ListenerSection};
use crate::plan::{ClientAddressPlan, ClientKeying, ForwardingHeader, ProxyProtocol};

/// Default per-worker access log buffer.
const DEFAULT_LOG_BUFFER_BYTES: u64 = 64 * 1024;

/// A list of CIDRs; a bare address is a one-address network.
pub(crate) fn cidrs(
    src: &Source<'_>,
    key: &str,
    values: &[Spanned<String>],
) -> Result<Vec<IpNet>, ConfigError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let text = v.get_ref().trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    src.error(
                        span(v),
                        format!("{key}[{i}]"),
                        format!("{text:?} is not a CIDR or address"),
                        "a network such as \"10.0.0.0/8\" or \"2001:db8::/32\", or one address",
                    )
                })
        })
        .collect()
}

/// `proxy_protocol` and `proxy_protocol_from` of listener `i`.
pub(crate) fn proxy_protocol(
    src: &Source<'_>,
    i: usize,
    l: &ListenerSection,
) -> Result<(ProxyProtocol, Vec<IpNet>), ConfigError> {
    let mode = match &l.proxy_protocol {
        None => ProxyProtocol::Off,
        Some(v) => match v.get_ref().as_str() {
            "off" => ProxyProtocol::Off,
            "optional" => ProxyProtocol::Optional,
            "required" => ProxyProtocol::Required,
            other => {
                return Err(src.error(
                    span(v),
                    format!("listeners[{i}].proxy_protocol"),
                    format!("{other:?} is not a PROXY protocol mode"),
                    "\"off\", \"optional\" or \"required\"",
                ))
            }
        },
    };
    let from = cidrs(
        src,
        &format!("listeners[{i}].proxy_protocol_from"),
        &l.proxy_protocol_from,
    )?;
    if mode != ProxyProtocol::Off && from.is_empty() {
        return Err(src.error(
            l.proxy_protocol.as_ref().and_then(span),
            format!("listeners[{i}].proxy_protocol_from"),
            "the PROXY protocol is on but no source may send it",
            "the load balancers' networks, e.g. proxy_protocol_from = [\"10.0.0.0/8\"]",
        ));
    }
    Ok((mode, from))
}

/// `[client_address]`.
pub(crate) fn client_address(
    src: &Source<'_>,
    c: &ClientAddressSection,
) -> Result<ClientAddressPlan, ConfigError> {
    let header = match &c.header {
        None => ForwardingHeader::XForwardedFor,
        Some(v) => match v.get_ref().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => ForwardingHeader::XForwardedFor,
            "forwarded" => ForwardingHeader::Forwarded,
            other => {
                return Err(src.error(
                    span(v),
                    "client_address.header",
                    format!("{other:?} is not a forwarding header"),
                    "\"x-forwarded-for\" or \"forwarded\"",
                ))
            }
        },
    };
    let prefix = |value, key, default, max| {
        crate::compile::ranged(src, value, key, default, 1..max).map(|n| n as u8)
    };
    let keying = ClientKeying {
        v4: prefix(
            &c.client_prefix_v4,
            "client_address.client_prefix_v4",
            32,
            32,
        )?,
        v6: prefix(
            &c.client_prefix_v6,
            "client_address.client_prefix_v6",
            64,
            128,
        )?,
    };
    Ok(ClientAddressPlan {
        trusted_proxies: cidrs(src, "client_address.trusted_proxies", &c.trusted_proxies)?,
        header,
        keying,
    })
}

/// `[access_log]`.
pub(crate) fn access_log(
    src: &Source<'_>,
    a: &AccessLogSection,
) -> Result<AccessLogPlan, ConfigError> {
    let path = a.path.get_ref().trim();
    let target = match path {
        "stdout" | "-" => LogTarget::Stdout,
        "" => {
            return Err(src.error(
                span(&a.path),
                "access_log.path",
                "the path is empty",
                "a file path or \"stdout\"",
            ))
        }
        p => LogTarget::File(PathBuf::from(p)),
    };
    let format = match (&a.fields, &a.format) {
        (Some(f), Some(_)) => {
            return Err(src.error(
                span(f),
                "access_log.fields",
                "both `fields` and `format` are set",
                "one of them: `fields` for a JSON object, `format` for a template",
            ))
        }
        (Some(f), None) => LineFormat::Fields(
            parse_fields(f.get_ref())
                .map_err(|e| src.error(span(f), "access_log.fields", e, "names from that list"))?,
        ),
        (None, Some(t)) => LineFormat::Template(parse_template(t.get_ref()).map_err(|e| {
            src.error(
                span(t),
                "access_log.format",
                e,
                "$context.NAME placeholders with names from that list",
            )
        })?),
        (None, None) => LineFormat::Fields(crate::access_log::Field::ALL.to_vec()),
    };
    let buffer_bytes = ranged(
        src,
        &a.buffer_bytes,
        "access_log.buffer_bytes",
        DEFAULT_LOG_BUFFER_BYTES,
        4096..64 << 20,
    )? as usize;
    Ok(AccessLogPlan {
        target,
        format,
        buffer_bytes,
    })
}
