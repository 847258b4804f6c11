//! The one pagination loop every list call goes through, and the way list calls feed it.

use std::collections::HashSet;
use std::future::Future;

use aws_sdk_ssoadmin::config::http::HttpResponse;
use aws_sdk_ssoadmin::error::{ProvideErrorMetadata, SdkError};

use crate::error::{ConnectorError, Op};
use crate::ratelimit::RateLimits;
use crate::retry::{Timing, with_retries};

/// Calls `fetch_page` with `None`, then with each NextToken it returns, and concatenates the items.
///
/// A `None` or empty token ends the listing. A token seen before is an error rather than a loop:
/// moto 5.2.1 hands out the same token forever when it holds duplicate account assignments.
pub(crate) async fn collect_pages<T, F, Fut>(
    operation: &'static str,
    mut fetch_page: F,
) -> Result<Vec<T>, ConnectorError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), ConnectorError>>,
{
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut token = None;
    loop {
        let (page, next) = fetch_page(token.take()).await?;
        items.extend(page);
        match next.filter(|t| !t.is_empty()) {
            None => return Ok(items),
            Some(next) => {
                if !seen.insert(next.clone()) {
                    return Err(ConnectorError::PaginationLoop { operation, token: next });
                }
                token = Some(next);
            }
        }
    }
}

/// Makes one AWS call: waits for a token of the call's rate-limit bucket, then awaits `request` (SDK
/// `send()` futures do nothing until awaited, so the request leaves only after the token is taken) and maps
/// its error through `op`.
///
/// The request goes on the heap: SDK send futures are several kilobytes, and held inline they made the
/// futures of `sync` (which nest many of them) overflow a 2 MiB thread stack.
pub(crate) fn call<'a, O, E>(
    limits: &'a RateLimits,
    op: Op,
    request: impl Future<Output = Result<O, SdkError<E, HttpResponse>>> + 'a,
) -> impl Future<Output = Result<O, ConnectorError>> + 'a
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let request = Box::pin(request);
    async move {
        limits.acquire_for(op.family(), &op.action()).await;
        request.await.map_err(|e| op.err(e))
    }
}

/// [`call`] again while it fails transiently, as `timing` says: `send` issues the request anew for each attempt,
/// and each attempt takes its own token and is counted.
pub(crate) async fn call_retried<O, E, S, Fut>(
    limits: &RateLimits,
    timing: &Timing,
    op: Op,
    send: S,
) -> Result<O, ConnectorError>
where
    S: Fn() -> Fut,
    Fut: Future<Output = Result<O, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    with_retries(timing, op, || call(limits, op, send())).await
}

/// Lists every page of one AWS list call through [`collect_pages`], each page a [`call_retried`]: `send` issues
/// the request for a page token, `page` takes the items and the NextToken out of the answer. A page that fails
/// transiently is asked for again with the same token, so the pages already read are kept.
pub(crate) async fn list_all<T, O, E, S, Fut, P>(
    limits: &RateLimits,
    timing: &Timing,
    op: Op,
    send: S,
    page: P,
) -> Result<Vec<T>, ConnectorError>
where
    S: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<O, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    P: Fn(O) -> (Vec<T>, Option<String>),
{
    let (send, page) = (&send, &page);
    collect_pages(
        op.name,
        |token| async move { call_retried(limits, timing, op, || send(token.clone())).await.map(page) },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Serves canned pages keyed by the token asked for; records the tokens asked for.
    async fn run(
        pages: &[(Option<&str>, &[u32], Option<&str>)],
    ) -> (Result<Vec<u32>, ConnectorError>, Vec<Option<String>>) {
        let asked = RefCell::new(Vec::new());
        let result = collect_pages("ListThings", |token: Option<String>| {
            asked.borrow_mut().push(token.clone());
            let page = pages.iter().find(|(t, _, _)| t.map(str::to_string) == token).cloned();
            async move {
                let (_, items, next) = page.expect("test asked for an unknown token");
                Ok((items.to_vec(), next.map(str::to_string)))
            }
        })
        .await;
        (result, asked.into_inner())
    }

    #[tokio::test]
    async fn follows_tokens_until_none_or_empty() {
        let (r, asked) = run(&[(None, &[1, 2], Some("a")), (Some("a"), &[3], Some("b")), (Some("b"), &[], None)]).await;
        assert_eq!(r.expect("pages"), vec![1, 2, 3]);
        assert_eq!(asked, vec![None, Some("a".into()), Some("b".into())]);

        let (r, asked) = run(&[(None, &[7], Some(""))]).await;
        assert_eq!(r.expect("pages"), vec![7]);
        assert_eq!(asked.len(), 1, "an empty NextToken ends the listing");
    }

    #[tokio::test]
    async fn repeated_token_is_an_error_not_a_loop() {
        // a → b → a: the second "a" must stop the loop (moto's duplicate-assignment behaviour).
        let (r, asked) =
            run(&[(None, &[1], Some("a")), (Some("a"), &[2], Some("b")), (Some("b"), &[3], Some("a"))]).await;
        match r {
            Err(ConnectorError::PaginationLoop { operation, token }) => {
                assert_eq!(operation, "ListThings");
                assert_eq!(token, "a");
            }
            other => panic!("expected PaginationLoop, got {other:?}"),
        }
        assert_eq!(asked.len(), 3);
        assert!(!ConnectorError::PaginationLoop { operation: "x", token: "a".into() }.is_retryable());

        // The same token straight away (the shape moto produces) fails on the second page.
        let (r, asked) = run(&[(None, &[1], Some("t")), (Some("t"), &[1], Some("t"))]).await;
        assert!(matches!(r, Err(ConnectorError::PaginationLoop { .. })), "{r:?}");
        assert_eq!(asked.len(), 2);
    }

    #[tokio::test]
    async fn page_errors_propagate() {
        let r: Result<Vec<u32>, _> = collect_pages("ListThings", |_| async {
            Err(ConnectorError::Throttled {
                operation: "ListThings",
                code: "ThrottlingException".into(),
                message: "slow down".into(),
            })
        })
        .await;
        assert!(matches!(r, Err(ConnectorError::Throttled { .. })));
    }
}
