//! Multipart uploads: create, upload a part, complete, abort.

use bytes::Bytes;
use futures_util::Stream;
use reqwest::Method;

use super::client::Target;
use super::deadline;
use super::error::Result;
use super::object::{complete_body, CompletedPart};
use super::request::Upload;
use super::{xml, Client};

impl Client {
    /// Starts a multipart upload; returns its upload id.
    pub async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String> {
        let what = || {
            format!(
                "starting the upload of s3://{bucket}/{}",
                crate::text::Escaped(key)
            )
        };
        self.small(what, self.create_multipart_once(bucket, key))
            .await
    }

    /// Assembles the object from `parts` (in part-number order); returns its ETag. S3 may answer
    /// 200 with an error document here, which is reported as the error it holds.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<String> {
        let what = || {
            format!(
                "completing the upload of s3://{bucket}/{}",
                crate::text::Escaped(key)
            )
        };
        // S3 may take minutes to assemble a large object (it keeps the connection alive with
        // blanks meanwhile): five deadlines for this one.
        let fut = self.complete_multipart_once(bucket, key, upload_id, parts);
        deadline::within(self.deadline * 5, what, fut).await
    }

    /// Abandons a multipart upload and frees its parts.
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let what = || {
            format!(
                "aborting the upload of s3://{bucket}/{}",
                crate::text::Escaped(key)
            )
        };
        self.small(what, self.abort_multipart_once(bucket, key, upload_id))
            .await
    }

    /// Starts a multipart upload; returns its upload id.
    async fn create_multipart_once(&self, bucket: &str, key: &str) -> Result<String> {
        let url = self.url(bucket, Some(key), &[("uploads", "")])?;
        let resp = self.send(Method::POST, &url, &[], None).await?;
        let resp = self
            .success(&Method::POST, &url, Target::Object(bucket, key), resp)
            .await?;
        let body = Self::small_text(&url, resp).await?;
        xml::text(&body, "UploadId")
            .filter(|u| !u.is_empty())
            .map(|u| u.into_owned())
            .ok_or_else(|| Self::protocol(&url, "no <UploadId> in the answer"))
    }

    /// Uploads `body` as part `part_number` (1–10000; all but the last at least 5 MiB); returns
    /// its ETag for [`Client::complete_multipart`]. Sent once: on failure, send the part again
    /// from its source.
    pub async fn upload_part<S>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Upload<S>,
    ) -> Result<String>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let n = part_number.to_string();
        let url = self.url(
            bucket,
            Some(key),
            &[("partNumber", &n), ("uploadId", upload_id)],
        )?;
        let resp = self.send_stream(Method::PUT, &url, body).await?;
        let resp = self
            .success(
                &Method::PUT,
                &url,
                Target::Upload(bucket, key, upload_id),
                resp,
            )
            .await?;
        Self::etag(&url, &resp)
    }

    /// Assembles the object from `parts` (in part-number order); returns its ETag. S3 may answer
    /// 200 with an error document here, which is reported as the error it holds.
    async fn complete_multipart_once(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<String> {
        let url = self.url(bucket, Some(key), &[("uploadId", upload_id)])?;
        let body = Bytes::from(complete_body(parts));
        let extra = [("content-type", "application/xml".to_string())];
        let resp = self.send(Method::POST, &url, &extra, Some(body)).await?;
        let target = Target::Upload(bucket, key, upload_id);
        let resp = self.success(&Method::POST, &url, target, resp).await?;
        let status = resp.status();
        let text = Self::small_text(&url, resp).await?;
        if xml::error(&text).is_some() {
            return Err(self.classify(&Method::POST, &url, target, status, &text));
        }
        xml::text(&text, "ETag")
            .map(|e| e.into_owned())
            .ok_or_else(|| Self::protocol(&url, "no <ETag> in CompleteMultipartUploadResult"))
    }

    /// Abandons a multipart upload and frees its parts.
    async fn abort_multipart_once(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let url = self.url(bucket, Some(key), &[("uploadId", upload_id)])?;
        let resp = self.send(Method::DELETE, &url, &[], None).await?;
        self.success(
            &Method::DELETE,
            &url,
            Target::Upload(bucket, key, upload_id),
            resp,
        )
        .await?;
        Ok(())
    }
}
