//! The accept loop: TLS, dropped connections and the unreachable mode.

use std::sync::{Arc, atomic::Ordering::SeqCst};

use axum::Router;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::net::TcpListener;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::{Shared, lock};

/// A CA generated at start and a server certificate for `localhost` and `127.0.0.1`.
pub(crate) struct Tls {
    pub(crate) ca_pem: String,
    pub(crate) ca_der: Vec<u8>,
    acceptor: TlsAcceptor,
}

impl Tls {
    pub(crate) fn generate() -> Result<Tls, Box<dyn std::error::Error + Send + Sync>> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "eventer-fake-apiserver-ca");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        let cert = params.signed_by(&key, &issuer)?;

        let chain = vec![cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let ca_der: CertificateDer<'static> = ca_cert.der().clone();
        Ok(Tls { ca_pem: ca_cert.pem(), ca_der: ca_der.to_vec(), acceptor: TlsAcceptor::from(Arc::new(config)) })
    }
}

/// Accept connections until `stop`, serving each with HTTP/1.1.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    tls: Option<Tls>,
    stop: CancellationToken,
) {
    let acceptor = tls.map(|t| t.acceptor);
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    debug!(error = %e, "Accept failed.");
                    continue;
                }
            },
        };
        if shared.unreachable.load(SeqCst) {
            drop(stream);
            shared.refused.send_modify(|n| *n += 1);
            continue;
        }
        let kill = lock(&shared.connections).clone();
        let service = TowerToHyperService::new(app.clone());
        let acceptor = acceptor.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new();
            let conn = async {
                match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => http.serve_connection(TokioIo::new(tls), service).await,
                        Err(e) => {
                            debug!(error = %e, "TLS handshake failed.");
                            Ok(())
                        }
                    },
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                }
            };
            // Cancelling drops the connection mid-whatever, as a network failure would.
            tokio::select! {
                served = conn => if let Err(e) = served { debug!(error = %e, "Connection ended with an error.") },
                () = kill.cancelled() => {}
                () = stop.cancelled() => {}
            }
        });
    }
}
