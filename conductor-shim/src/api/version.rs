//! The `X-OpenStack-Ironic-API-Version` header: parsing, range check and response headers.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The request header.
pub const VERSION_HEADER: &str = "x-openstack-ironic-api-version";
/// Response header with the lowest supported version.
pub const MIN_VERSION_HEADER: &str = "x-openstack-ironic-api-minimum-version";
/// Response header with the highest supported version.
pub const MAX_VERSION_HEADER: &str = "x-openstack-ironic-api-maximum-version";

/// The lowest supported version (also what a request without the header gets).
pub const MIN_VERSION: ApiVersion = ApiVersion { major: 1, minor: 1 };
/// The highest supported version (`latest`).
pub const MAX_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 115,
};

/// An Ironic API microversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Always 1.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl ApiVersion {
    /// Whether this is at least `1.<minor>`.
    pub fn at_least(self, minor: u32) -> bool {
        self >= ApiVersion { major: 1, minor }
    }

    /// The version requested by a header value: absent → 1.1, `latest` → 1.115; malformed
    /// or out of range → 406 as Ironic answers.
    pub fn from_header(value: Option<&str>) -> Result<ApiVersion, ApiError> {
        let Some(value) = value.map(str::trim) else {
            return Ok(MIN_VERSION);
        };
        if value.eq_ignore_ascii_case("latest") {
            return Ok(MAX_VERSION);
        }
        let invalid = || {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("Invalid value for X-OpenStack-Ironic-API-Version header: {value}"),
            )
        };
        let (major, minor) = value.split_once('.').ok_or_else(invalid)?;
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse::<u32>().ok()
            }
        };
        let version = ApiVersion {
            major: number(major).ok_or_else(invalid)?,
            minor: number(minor).ok_or_else(invalid)?,
        };
        if version < MIN_VERSION || version > MAX_VERSION {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {version} was requested but the minor version is not supported by \
                     this service. The supported version range is: [{MIN_VERSION}, {MAX_VERSION}]."
                ),
            ));
        }
        Ok(version)
    }
}

fn add_range_headers(headers: &mut HeaderMap) {
    for (name, version) in [
        (MIN_VERSION_HEADER, MIN_VERSION),
        (MAX_VERSION_HEADER, MAX_VERSION),
    ] {
        if let Ok(value) = HeaderValue::from_str(&version.to_string()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Middleware for `/v1` routes: resolves the requested version into a request extension,
/// answers 406 for bad ones, and adds Ironic's version headers to every response.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let version = match ApiVersion::from_header(header.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            let mut response = e.into_response();
            add_range_headers(response.headers_mut());
            return response;
        }
    };
    request.extensions_mut().insert(version);
    let mut response = next.run(request).await;
    add_range_headers(response.headers_mut());
    if let Ok(value) = HeaderValue::from_str(&version.to_string()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(VERSION_HEADER), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(ApiVersion::from_header(None).unwrap(), MIN_VERSION);
        assert_eq!(
            ApiVersion::from_header(Some("latest")).unwrap(),
            MAX_VERSION
        );
        let v = ApiVersion::from_header(Some("1.62")).unwrap();
        assert!(v.at_least(62) && !v.at_least(68));
        for bad in ["1.116", "2.0", "1.0", "x", "1.", "1.a", "1.-1", ""] {
            let e = ApiVersion::from_header(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE, "{bad}");
        }
    }
}
