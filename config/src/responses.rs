//! The catalogue of responses the gateway makes itself (API Gateway's "gateway responses").
//!
//! Every status the gateway answers on its own — a missing route, a body too large, an upstream
//! that timed out — is one [`ResponseType`] with a default status and message. An API may
//! override a type's status, headers and body; `DEFAULT_4XX` / `DEFAULT_5XX` overrides apply to
//! every type of that class that has no override of its own, as in AWS.

use std::collections::BTreeMap;

macro_rules! response_types {
    ($($variant:ident = $name:literal, $status:literal, $message:literal;)*) => {
        /// A kind of response the gateway makes itself.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResponseType { $(
            #[doc = $message]
            $variant,
        )* }

        impl ResponseType {
            /// Every type, in catalogue order.
            pub const ALL: &'static [ResponseType] = &[$(ResponseType::$variant),*];

            /// The AWS name (`THROTTLED`), used as the config key.
            pub fn name(self) -> &'static str {
                match self { $(ResponseType::$variant => $name),* }
            }

            /// Status answered when the API does not override it.
            pub fn default_status(self) -> u16 {
                match self { $(ResponseType::$variant => $status),* }
            }

            /// `message` of the default JSON body.
            pub fn default_message(self) -> &'static str {
                match self { $(ResponseType::$variant => $message),* }
            }

            /// Looks a type up by its AWS name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(ResponseType::$variant),)* _ => None }
            }
        }
    };
}

response_types! {
    AccessDenied = "ACCESS_DENIED", 403, "Forbidden";
    ApiConfigurationError = "API_CONFIGURATION_ERROR", 500, "Internal server error";
    BadRequestBody = "BAD_REQUEST_BODY", 400, "Invalid request body";
    BadRequestParameters = "BAD_REQUEST_PARAMETERS", 400, "Invalid request parameters";
    BadRequest = "BAD_REQUEST", 400, "Bad Request";
    Default4xx = "DEFAULT_4XX", 400, "Bad Request";
    Default5xx = "DEFAULT_5XX", 500, "Internal server error";
    ExpectationFailed = "EXPECTATION_FAILED", 417, "Expectation Failed";
    IntegrationFailure = "INTEGRATION_FAILURE", 502, "Bad Gateway";
    IntegrationTimeout = "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out";
    InvalidApiKey = "INVALID_API_KEY", 403, "Forbidden";
    MisdirectedRequest = "MISDIRECTED_REQUEST", 421, "Misdirected Request";
    MissingAuthenticationToken = "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token";
    NotImplemented = "NOT_IMPLEMENTED", 501, "Not Implemented";
    QuotaExceeded = "QUOTA_EXCEEDED", 429, "Limit Exceeded";
    RequestHeaderFieldsTooLarge = "REQUEST_HEADER_FIELDS_TOO_LARGE", 431, "Request Header Fields Too Large";
    RequestTimeout = "REQUEST_TIMEOUT", 408, "Request Timeout";
    RequestTooLarge = "REQUEST_TOO_LARGE", 413, "Request Too Long";
    ResourceNotFound = "RESOURCE_NOT_FOUND", 404, "Not Found";
    ServiceUnavailable = "SERVICE_UNAVAILABLE", 503, "Service Unavailable";
    Throttled = "THROTTLED", 429, "Too Many Requests";
    Unauthorized = "UNAUTHORIZED", 401, "Unauthorized";
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported Media Type";
    UriTooLong = "URI_TOO_LONG", 414, "Request-URI Too Long";
}

/// One API's override of a response type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseOverride {
    /// Replaces the default status.
    pub status: Option<u16>,
    /// Added to the response.
    pub headers: Vec<(String, String)>,
    /// Body template; `$context.error.message` and `$context.requestId` are substituted.
    pub body: Option<String>,
}

/// The overrides an API (or the gateway, for requests that match no API) answers with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseCatalogue {
    overrides: BTreeMap<ResponseType, ResponseOverride>,
}

impl ResponseCatalogue {
    /// A catalogue with the given overrides.
    pub fn new(overrides: BTreeMap<ResponseType, ResponseOverride>) -> Self {
        Self { overrides }
    }

    /// The override that applies to `kind`: its own, else the `DEFAULT_4XX`/`DEFAULT_5XX` one.
    pub fn override_for(&self, kind: ResponseType) -> Option<&ResponseOverride> {
        self.overrides.get(&kind).or_else(|| {
            let class = match kind.default_status() {
                400..=499 => ResponseType::Default4xx,
                _ => ResponseType::Default5xx,
            };
            self.overrides.get(&class)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_statuses_are_error_classes() {
        for kind in ResponseType::ALL {
            assert_eq!(ResponseType::from_name(kind.name()), Some(*kind));
            assert!((400..=599).contains(&kind.default_status()), "{kind:?}");
        }
    }

    #[test]
    fn class_default_applies_only_without_an_own_override() {
        let mut overrides = BTreeMap::new();
        let default4 = ResponseOverride {
            status: Some(418),
            headers: vec![],
            body: None,
        };
        let own = ResponseOverride {
            status: Some(410),
            headers: vec![],
            body: None,
        };
        overrides.insert(ResponseType::Default4xx, default4.clone());
        overrides.insert(ResponseType::ResourceNotFound, own.clone());
        let catalogue = ResponseCatalogue::new(overrides);
        assert_eq!(
            catalogue.override_for(ResponseType::ResourceNotFound),
            Some(&own)
        );
        assert_eq!(
            catalogue.override_for(ResponseType::Throttled),
            Some(&default4)
        );
        assert_eq!(
            catalogue.override_for(ResponseType::IntegrationFailure),
            None
        );
    }
}
