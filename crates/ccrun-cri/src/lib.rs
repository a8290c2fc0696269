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

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

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
