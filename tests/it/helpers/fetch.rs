//! What a server serves without a token, fetched as servers and Prometheus fetch it.

use super::TestApp;

impl TestApp {
    /// `GET /v1/krl`: the KRL's bytes as sshd would be given them.
    pub async fn krl(&self) -> Vec<u8> {
        let resp = self
            .http
            .get(format!("{}/v1/krl", self.url))
            .send()
            .await
            .expect("GET /v1/krl");
        assert!(resp.status().is_success(), "{resp:?}");
        resp.bytes().await.expect("KRL bytes").to_vec()
    }

    /// `GET /metrics` on the metrics listener: the Prometheus text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(&self.metrics_url)
            .send()
            .await
            .expect("GET /metrics");
        resp.text().await.expect("metrics text")
    }
}
