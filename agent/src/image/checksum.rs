//! Which digest the downloaded image must match: `os_hash_*` first, then the
//! `checksum` value or checksum-file URL.

use tracing::{info, warn};

use super::error::ImageError;
use super::info::ImageInfo;
use super::options::DownloadOptions;

/// Largest checksum file we accept (they list a few images; refuse anything huge).
const MAX_CHECKSUM_FILE: u64 = 4 << 20;

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// MD5 (only when the conductor enables it).
    Md5,
    /// SHA-256.
    Sha256,
    /// SHA-512 (Glance's default `os_hash_algo`).
    Sha512,
}

impl HashAlgo {
    /// Parses a hashlib-style name (`sha256`, `SHA-512`, `md5`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "md5" => Some(HashAlgo::Md5),
            "sha256" => Some(HashAlgo::Sha256),
            "sha512" => Some(HashAlgo::Sha512),
            _ => None,
        }
    }

    /// The hashlib name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// Length of the hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 32,
            HashAlgo::Sha256 => 64,
            HashAlgo::Sha512 => 128,
        }
    }
}

/// The digest the image must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedChecksum {
    /// Algorithm.
    pub algo: HashAlgo,
    /// Lowercase hex digest.
    pub hex: String,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A token that looks like a digest: 32, 64 or 128 hex characters.
fn is_digest(s: &str) -> bool {
    matches!(s.len(), 32 | 64 | 128) && is_hex(s)
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// The algorithm implied by a digest's length: 128 → sha512, 64 → sha256, 32 → md5 (only
/// when MD5 is enabled).
pub fn algo_by_length(hex: &str, md5_enabled: bool) -> Result<HashAlgo, ImageError> {
    if !is_hex(hex) {
        return Err(ImageError::ChecksumSpec(format!(
            "checksum `{hex}` is not a hexadecimal digest"
        )));
    }
    match hex.len() {
        128 => Ok(HashAlgo::Sha512),
        64 => Ok(HashAlgo::Sha256),
        32 if md5_enabled => Ok(HashAlgo::Md5),
        32 => Err(ImageError::ChecksumSpec(
            "the checksum is an MD5 digest but MD5 is disabled on this agent; \
             provide os_hash_algo/os_hash_value with sha256 or sha512"
                .into(),
        )),
        n => Err(ImageError::ChecksumSpec(format!(
            "cannot tell the algorithm of a {n}-character checksum (want 32, 64 or 128)"
        ))),
    }
}

/// The last path segment of `url` (without query or fragment).
pub fn url_basename(url: &str) -> String {
    let path = match reqwest::Url::parse(url) {
        Ok(u) => u.path().to_string(),
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    };
    path.rsplit('/').next().unwrap_or_default().to_string()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn names_file(candidate: &str, names: &[String]) -> bool {
    let c = candidate.trim();
    let c = c.strip_prefix("./").unwrap_or(c);
    names
        .iter()
        .any(|n| !n.is_empty() && (c == n || c.ends_with(&format!("/{n}"))))
}

/// GNU coreutils style: `<hex> [*]<name>`.
fn gnu_line(line: &str, names: &[String]) -> Option<String> {
    let (hex, rest) = line.split_once(char::is_whitespace)?;
    let name = rest.trim_start();
    let name = name.strip_prefix('*').unwrap_or(name);
    (is_digest(hex) && names_file(name, names)).then(|| hex.to_ascii_lowercase())
}

/// BSD / CentOS style: `SHA256 (<name>) = <hex>`.
fn bsd_line(line: &str, names: &[String]) -> Option<String> {
    let (algo, rest) = line.split_once('(')?;
    let (name, tail) = rest.rsplit_once(')')?;
    let hex = tail.trim_start().strip_prefix('=')?.trim();
    let algo = algo.trim();
    let algo_ok = !algo.is_empty() && algo.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (algo_ok && is_digest(hex) && names_file(name, names)).then(|| hex.to_ascii_lowercase())
}

/// Finds the digest for `image_name` in a checksum file: the whole file when it is a single
/// digest token, else the first non-comment line naming the image (GNU or BSD style).
pub fn parse_checksum_file(text: &str, image_name: &str) -> Option<String> {
    let whole = text.trim();
    if is_digest(whole) {
        return Some(whole.to_ascii_lowercase());
    }
    let mut names = vec![image_name.to_string()];
    let decoded = percent_decode(image_name);
    if decoded != image_name {
        names.push(decoded);
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|l| gnu_line(l, &names).or_else(|| bsd_line(l, &names)))
}

/// Resolves the expected digest, fetching a checksum file through `fetch` when `checksum` is a
/// URL. Pure apart from `fetch`, so every rule is unit-tested without a server.
pub fn resolve_with<F>(
    info: &ImageInfo,
    md5_enabled: bool,
    fetch: F,
) -> Result<ExpectedChecksum, ImageError>
where
    F: FnOnce(&str) -> Result<String, ImageError>,
{
    let declared = nonempty(&info.os_hash_algo);
    if let (Some(algo_name), Some(value)) = (declared, nonempty(&info.os_hash_value)) {
        match HashAlgo::from_name(algo_name) {
            Some(HashAlgo::Md5) if !md5_enabled => {
                return Err(ImageError::ChecksumSpec(
                    "os_hash_algo is md5 but MD5 is disabled on this agent".into(),
                ));
            }
            Some(algo) => {
                if !is_hex(value) {
                    return Err(ImageError::ChecksumSpec(format!(
                        "os_hash_value `{value}` is not a hexadecimal digest"
                    )));
                }
                if value.len() != algo.hex_len() {
                    warn!(
                        algo = algo.name(),
                        len = value.len(),
                        "os_hash_value length does not match os_hash_algo"
                    );
                }
                return Ok(ExpectedChecksum {
                    algo,
                    hex: value.to_ascii_lowercase(),
                });
            }
            None if nonempty(&info.checksum).is_none() => {
                return Err(ImageError::ChecksumSpec(format!(
                    "os_hash_algo `{algo_name}` is not supported (md5, sha256, sha512) \
                     and there is no checksum to fall back to"
                )));
            }
            None => warn!(
                algo = algo_name,
                "unsupported os_hash_algo, falling back to the checksum field"
            ),
        }
    }
    let Some(checksum) = nonempty(&info.checksum) else {
        return Err(ImageError::ChecksumSpec(
            "no checksum: neither os_hash_algo/os_hash_value nor checksum is set".into(),
        ));
    };
    let hex = if is_url(checksum) {
        let text = fetch(checksum)?;
        let first = info.urls.first().map(String::as_str).unwrap_or_default();
        let name = url_basename(first);
        let hex = parse_checksum_file(&text, &name).ok_or_else(|| {
            ImageError::ChecksumSpec(format!(
                "checksum file {checksum} has no digest for `{name}` (the image URL's file name)"
            ))
        })?;
        info!(checksum_url = checksum, image = %name, "checksum taken from checksum file");
        hex
    } else {
        checksum.to_ascii_lowercase()
    };
    let algo = algo_by_length(&hex, md5_enabled)?;
    if let Some(d) = declared.and_then(HashAlgo::from_name)
        && d != algo
    {
        warn!(
            declared = d.name(),
            inferred = algo.name(),
            "declared hash algorithm disagrees with the digest length"
        );
    }
    Ok(ExpectedChecksum { algo, hex })
}

/// Resolves the expected digest, fetching a checksum file over HTTP (same client settings,
/// proxies and auth as the image) when `checksum` is a URL.
pub fn resolve_checksum(
    info: &ImageInfo,
    md5_enabled: bool,
    opts: &DownloadOptions,
) -> Result<ExpectedChecksum, ImageError> {
    resolve_with(info, md5_enabled, |url| {
        super::source::fetch_text(info, url, opts, MAX_CHECKSUM_FILE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const MD5: &str = "098f6bcd4621d373cade4e832627b4f6";

    fn s512() -> String {
        "ab".repeat(64)
    }

    fn info(checksum: Option<&str>, algo: Option<&str>, value: Option<&str>) -> ImageInfo {
        ImageInfo {
            id: "img".into(),
            urls: vec!["http://h/images/disk%20one.img?temp=1".into()],
            checksum: checksum.map(String::from),
            os_hash_algo: algo.map(String::from),
            os_hash_value: value.map(String::from),
            ..Default::default()
        }
    }

    fn no_fetch(_: &str) -> Result<String, ImageError> {
        Err(ImageError::Internal("must not fetch".into()))
    }

    #[test]
    fn os_hash_wins_over_checksum() -> Result<(), ImageError> {
        let i = info(Some(MD5), Some("SHA256"), Some(&S256.to_uppercase()));
        let e = resolve_with(&i, false, no_fetch)?;
        assert_eq!(e.algo, HashAlgo::Sha256);
        assert_eq!(e.hex, S256);
        let i = info(None, Some("sha512"), Some(&s512()));
        assert_eq!(resolve_with(&i, false, no_fetch)?.algo, HashAlgo::Sha512);
        // md5 through os_hash only when enabled.
        let i = info(None, Some("md5"), Some(MD5));
        assert!(resolve_with(&i, false, no_fetch).is_err());
        assert_eq!(resolve_with(&i, true, no_fetch)?.algo, HashAlgo::Md5);
        // Unknown algorithm falls back to the checksum field.
        let i = info(Some(S256), Some("sha384"), Some("00"));
        assert_eq!(resolve_with(&i, false, no_fetch)?.algo, HashAlgo::Sha256);
        let i = info(None, Some("sha384"), Some("00"));
        assert!(resolve_with(&i, false, no_fetch).is_err());
        Ok(())
    }

    #[test]
    fn plain_checksum_by_length() -> Result<(), ImageError> {
        assert_eq!(
            resolve_with(&info(Some(&s512()), None, None), false, no_fetch)?.algo,
            HashAlgo::Sha512
        );
        assert_eq!(
            resolve_with(&info(Some(S256), None, None), false, no_fetch)?.algo,
            HashAlgo::Sha256
        );
        assert_eq!(
            resolve_with(&info(Some(MD5), None, None), true, no_fetch)?.algo,
            HashAlgo::Md5
        );
        let e = resolve_with(&info(Some(MD5), None, None), false, no_fetch);
        assert!(matches!(e, Err(ImageError::ChecksumSpec(ref m)) if m.contains("MD5 is disabled")));
        assert!(resolve_with(&info(Some("abcd"), None, None), true, no_fetch).is_err());
        assert!(resolve_with(&info(Some(&"z".repeat(64)), None, None), true, no_fetch).is_err());
        assert!(resolve_with(&info(None, None, None), true, no_fetch).is_err());
        Ok(())
    }

    #[test]
    fn checksum_file_formats() {
        let name = "disk.img";
        // A single token.
        assert_eq!(
            parse_checksum_file(&format!("{S256}\n"), name).as_deref(),
            Some(S256)
        );
        // GNU, text and binary mode, with other files and comments around.
        let gnu = format!(
            "# comment {S256} disk.img\n{MD5}  other.img\n{S256}  disk.img.sig\n{S256} *disk.img\n"
        );
        assert_eq!(parse_checksum_file(&gnu, name).as_deref(), Some(S256));
        let gnu2 = format!("{}  ./sub/disk.img\n", s512().to_uppercase());
        assert_eq!(
            parse_checksum_file(&gnu2, name),
            Some(s512()),
            "paths ending in the name match, digests are lower-cased"
        );
        // BSD / CentOS style.
        let bsd = format!("SHA256 (other.img) = {MD5}\nSHA256 (disk.img) = {S256}\n");
        assert_eq!(parse_checksum_file(&bsd, name).as_deref(), Some(S256));
        // No line for this image.
        assert_eq!(parse_checksum_file(&format!("{S256}  x.img\n"), name), None);
        assert_eq!(parse_checksum_file("", name), None);
        // Percent-encoded URL names match the decoded file name.
        let spaced = format!("{S256}  disk one.img\n");
        assert_eq!(
            parse_checksum_file(&spaced, "disk%20one.img").as_deref(),
            Some(S256)
        );
    }

    #[test]
    fn checksum_url_is_fetched_and_matched_to_the_first_url() -> Result<(), ImageError> {
        let i = info(Some("https://h/SHA256SUMS"), None, None);
        let mut fetched = String::new();
        let e = resolve_with(&i, false, |u| {
            fetched = u.to_string();
            Ok(format!("{MD5}  other\n{S256}  disk one.img\n"))
        })?;
        assert_eq!(fetched, "https://h/SHA256SUMS");
        assert_eq!(e.algo, HashAlgo::Sha256);
        assert_eq!(e.hex, S256);
        // An MD5 digest from the file is refused when MD5 is off.
        let r = resolve_with(&i, false, |_| Ok(format!("{MD5}\n")));
        assert!(r.is_err());
        let r = resolve_with(&i, false, |_| Ok("nothing here\n".into()));
        assert!(
            matches!(r, Err(ImageError::ChecksumSpec(ref m)) if m.contains("disk one.img") || m.contains("disk%20one.img"))
        );
        Ok(())
    }

    #[test]
    fn basenames() {
        assert_eq!(url_basename("http://h/a/b/c.qcow2?x=1#f"), "c.qcow2");
        assert_eq!(url_basename("http://h/"), "");
        assert_eq!(url_basename("not a url/x.img?q"), "x.img");
    }
}
