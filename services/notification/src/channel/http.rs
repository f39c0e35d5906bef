//! What the HTTP channels (SMS, Zalo ZNS) share: one client, and the reading of
//! provider answers as sent / try again / give up.

use std::time::Duration;

use reqwest::{StatusCode, Url};

use super::ChannelError;

/// A client that gives up after `timeout` (the dispatcher holds row locks meanwhile).
pub(super) fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()?)
}

/// Parses a provider endpoint (`http` or `https`; TLS goes through the system OpenSSL).
pub(super) fn endpoint(variable: &str, raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw)
        .map_err(|err| anyhow::anyhow!("{variable}: `{raw}` is not a URL: {err}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => anyhow::bail!("{variable}: scheme `{other}` is neither http nor https"),
    }
}

/// Sends `request` to `provider` and returns the body of a successful answer; anything
/// else is read as try again / give up.
pub(super) async fn send(
    client: &reqwest::Client,
    provider: &str,
    request: reqwest::Request,
) -> Result<String, ChannelError> {
    let response = client
        .execute(request)
        .await
        .map_err(|err| transport_error(provider, &err))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(status_error(provider, status, &body));
    }
    Ok(body)
}

/// A request that got no answer: worth another try (the provider may be briefly away,
/// the connection may have dropped), unless the request itself could not be built.
pub(super) fn transport_error(provider: &str, err: &reqwest::Error) -> ChannelError {
    if err.is_builder() {
        // Strip the URL: it may carry a token in its query.
        return ChannelError::permanent(format!(
            "{provider} request invalid: {}",
            err.without_url_ref()
        ));
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "unreachable"
    } else {
        "failed"
    };
    ChannelError::retryable(format!("{provider} {what}: {}", err.without_url_ref()))
}

/// An HTTP status that is not success: overload, timeouts and server errors pass;
/// other client errors will not.
fn status_error(provider: &str, status: StatusCode, body: &str) -> ChannelError {
    let excerpt: String = body.chars().take(200).collect();
    let message = format!("{provider} answered {status}: {excerpt}");
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        ChannelError::retryable(message)
    } else {
        ChannelError::permanent(message)
    }
}

/// `reqwest::Error::without_url` by reference: the text of the error without its URL.
trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<endpoint>");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_and_server_errors_are_retried_other_client_errors_are_not() {
        assert!(status_error("sms", StatusCode::BAD_GATEWAY, "").retryable);
        assert!(status_error("sms", StatusCode::TOO_MANY_REQUESTS, "").retryable);
        assert!(!status_error("sms", StatusCode::BAD_REQUEST, "bad phone").retryable);
        assert!(!status_error("sms", StatusCode::UNAUTHORIZED, "").retryable);
        assert_eq!(
            status_error("sms", StatusCode::BAD_REQUEST, "bad phone").message,
            "sms answered 400 Bad Request: bad phone"
        );
    }

    #[test]
    fn endpoints_are_http_or_https_urls() {
        assert!(endpoint("SMS_API_URL", "http://sms-gw.internal/send").is_ok());
        assert!(endpoint("SMS_API_URL", "https://api.example.vn/send").is_ok());
        let err = endpoint("SMS_API_URL", "ftp://api.example.vn/send")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("SMS_API_URL: scheme `ftp`"), "{err}");
        assert!(endpoint("ZALO_ZNS_URL", "not a url").is_err());
    }
}
