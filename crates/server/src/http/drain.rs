//! Answers that come before the request body was read must still reach the client.
//!
//! When a handler (or the auth layer) answers without reading the request body, hyper drops
//! the body while the client is still sending it. Over HTTP/2 that resets the stream, and
//! curl and browsers then report a framing error instead of the 401/404/409 problem the server
//! sent. This layer gives every request a body that, when dropped unread, hands what remains
//! to a task that reads and discards it — at most [`MAX_DRAIN_BYTES`] for at most
//! [`MAX_DRAIN_TIME`] — so the stream ends normally and the answer arrives. Past those bounds
//! the stream is reset as before: a refused huge upload is not read to its end.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::{Stream, StreamExt};

/// How much of an unread body is read and discarded after the answer.
pub const MAX_DRAIN_BYTES: usize = 1 << 20;
/// How long the rest of an unread body is waited for.
pub const MAX_DRAIN_TIME: Duration = Duration::from_secs(5);

pub async fn drain_unread_body(req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let body = Body::from_stream(DrainOnDrop {
        inner: Some(body.into_data_stream()),
        finished: false,
    });
    next.run(Request::from_parts(parts, body)).await
}

struct DrainOnDrop {
    inner: Option<BodyDataStream>,
    finished: bool,
}

impl Stream for DrainOnDrop {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = inner.poll_next_unpin(cx);
        if let Poll::Ready(None | Some(Err(_))) = &next {
            self.finished = true;
        }
        next
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (Some(mut rest), Ok(rt)) = (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        rt.spawn(async move {
            let mut read = 0usize;
            let _ = tokio::time::timeout(MAX_DRAIN_TIME, async {
                while let Some(Ok(chunk)) = rest.next().await {
                    read += chunk.len();
                    if read > MAX_DRAIN_BYTES {
                        break;
                    }
                }
            })
            .await;
        });
    }
}
