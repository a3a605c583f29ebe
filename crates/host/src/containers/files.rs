//! Files in and out of a container as tar (the engine's `/containers/{name}/archive`).
//!
//! Flow: a download asks the engine for the tar of a path and waits for its first chunk, so a
//! missing path or container is an error before any byte is answered; the rest streams. An
//! upload streams a tar (checked by the caller) to the engine, which extracts it below the
//! path inside the container (the engine resolves the path in the container's root, symlinks
//! included). Neither has a fixed deadline: they last as long as the bytes flow.

use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{Engine, EngineError, EngineResult};

impl Engine {
    /// The tar of `path` in container `name` (a directory with its contents, or one file).
    pub async fn download(
        &self,
        name: &str,
        path: &str,
    ) -> EngineResult<impl Stream<Item = Result<Bytes, EngineError>> + Send + 'static> {
        let docker = self.client().await?;
        let opts = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let engine = self.name().to_string();
        let mut stream = docker
            .download_from_container(name, Some(opts))
            .map(move |r| r.map_err(|e| EngineError::from_bollard(&engine, e)))
            .boxed();
        let first = match tokio::time::timeout(self.timeout(), stream.next()).await {
            Ok(Some(r)) => Some(r?),
            Ok(None) => None,
            Err(_) => return Err(self.map_err(bollard::errors::Error::RequestTimeoutError)),
        };
        Ok(futures_util::stream::iter(first.map(Ok)).chain(stream))
    }

    /// Extracts the tar `body` below directory `path` of container `name`.
    pub async fn upload(
        &self,
        name: &str,
        path: &str,
        body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> EngineResult<()> {
        let docker = self.client().await?;
        let opts = UploadToContainerOptions {
            path: path.to_string(),
            // A directory is never replaced by a file or the other way round.
            no_overwrite_dir_non_dir: Some("true".into()),
            copy_uidgid: None,
        };
        docker
            .upload_to_container(name, Some(opts), bollard::body_try_stream(body))
            .await
            .map_err(|e| self.map_err(e))
    }
}
