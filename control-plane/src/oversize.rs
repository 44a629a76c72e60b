//! A request over the gRPC message size limit is `RESOURCE_EXHAUSTED` naming the limit (tonic
//! says `OUT_OF_RANGE`, which means something else: a value outside a valid range).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Rewrites tonic's "decoded message length too large" answers.
#[derive(Clone)]
pub struct OversizeLayer {
    /// --max-message-bytes, for the message.
    pub limit: usize,
}

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversize { inner, limit: self.limit }
    }
}

/// A service whose oversize answers [`OversizeLayer`] rewrites.
#[derive(Clone)]
pub struct Oversize<S> {
    inner: S,
    limit: usize,
}

impl<S, B, R> tower::Service<http::Request<B>> for Oversize<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let limit = self.limit;
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            relabel(response.headers_mut(), limit);
            Ok(response)
        })
    }
}

fn relabel(headers: &mut http::HeaderMap, limit: usize) {
    let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
    let too_large = headers.get("grpc-status").is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
        && headers.get("grpc-message").is_some_and(|v| v.to_str().unwrap_or_default().contains("length%20too%20large"));
    if too_large {
        let code = (tonic::Code::ResourceExhausted as i32).to_string();
        headers.insert("grpc-status", http::HeaderValue::from_str(&code).expect("digits"));
        let message = format!("the request is larger than the limit of {limit} bytes (--max-message-bytes)");
        let encoded = message.replace(' ', "%20");
        headers.insert("grpc-message", http::HeaderValue::from_str(&encoded).expect("ASCII"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_size_error_becomes_resource_exhausted() {
        let status = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
        );
        let mut headers = status.into_http::<()>().into_parts().0.headers;
        relabel(&mut headers, 4);
        let status = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("limit of 4 bytes"), "{}", status.message());
        let other = tonic::Status::out_of_range("page 9 does not exist");
        let mut headers = other.into_http::<()>().into_parts().0.headers;
        relabel(&mut headers, 4);
        assert_eq!(tonic::Status::from_header_map(&headers).unwrap().code(), tonic::Code::OutOfRange);
    }
}
