//! A Kubernetes CRI client: the `runtime.v1` gRPC API (RuntimeService, ImageService)
//! as the kubelet speaks it, over a unix socket, for driving a CRI runtime (containerd's
//! CRI plugin) from tests without a kubelet.
//!
//! The bindings in `src/gen/` are generated from `proto/v1.proto` (the cri-api
//! `runtime/v1` protocol) with `tonic-prost-build` and checked in, so building needs
//! neither `protoc` nor network access beyond crates.io; `scripts/gen-cri.sh`
//! regenerates them.

/// The generated `runtime.v1` messages and clients.
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod v1 {
    include!("gen/runtime.v1.rs");
}

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Response, Status};

pub use v1::image_service_client::ImageServiceClient;
pub use v1::runtime_service_client::RuntimeServiceClient;

/// Errors of [`connect`].
pub type Error = tonic::transport::Error;

/// Connects to the CRI endpoint listening on the unix socket `socket` (the kubelet's
/// `--container-runtime-endpoint unix://…`). The channel carries both services.
pub async fn connect(socket: &Path) -> Result<Channel, Error> {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is a placeholder: every connection goes to the socket.
    Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// A blocking CRI client: both services over one connection, each call run to
/// completion on a private single-threaded tokio runtime and bounded by a timeout (a
/// kubelet sets deadlines too). The runtime's thread is the caller's: nothing here
/// spawns threads of its own.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    timeout: Duration,
}

impl Cri {
    /// Connects to the CRI endpoint at `socket`; each call fails after `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> std::io::Result<Cri> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let channel = rt
            .block_on(connect(socket))
            .map_err(std::io::Error::other)?;
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            timeout,
        })
    }

    /// Calls the RuntimeService: `call` gets a client (a cheap clone) and returns the
    /// call's future, e.g. `cri.runtime(|mut c| async move { c.version(req).await })`.
    pub fn runtime<T, F>(
        &self,
        call: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T, Status>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        self.block(call(self.runtime.clone()))
    }

    /// Calls the ImageService, as [`Cri::runtime`] does the RuntimeService.
    pub fn images<T, F>(
        &self,
        call: impl FnOnce(ImageServiceClient<Channel>) -> F,
    ) -> Result<T, Status>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        self.block(call(self.images.clone()))
    }

    fn block<T, F>(&self, call: F) -> Result<T, Status>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        // The timer is made inside the runtime, which it needs.
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.timeout, call).await })
        {
            Ok(result) => result.map(Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }
}
