//! Uploads (raw and multipart) and downloads (whole, ranges, ETag), and what a message carries.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_sent_to_a_group_reaches_every_member_and_downloads_byte_for_byte() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let mut mike_ws = server.ws_ready(&mike).await;
    let picture = png(64, 48);
    let (attachment, message) =
        sent_to_general(&server, &ava, "homework.png", picture.clone()).await;
    assert_eq!(attachment["name"], "homework.png");
    assert_eq!(attachment["size"], picture.len());
    assert_eq!(attachment["content_type"], "image/png");
    assert_eq!(attachment["sha256"], sha256_hex(&picture));
    assert_eq!(
        (attachment["width"].as_i64(), attachment["height"].as_i64()),
        (Some(64), Some(48))
    );
    assert!(attachment["created_at"].is_string());
    assert_eq!(
        message["content"], "",
        "content may be empty beside an attachment"
    );
    assert_eq!(message["attachments"], json!([attachment]));

    let live = mike_ws.expect_type("group_message").await;
    assert_eq!(live["attachments"], json!([attachment]));
    let id = attachment["id"].as_i64().unwrap();
    let got = server
        .fetch(&format!("/v1/attachments/{id}"), mike.auth(), &[])
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, picture);
    assert_eq!(got.header("content-type"), Some("image/png"));
    assert!(got
        .header("content-disposition")
        .unwrap()
        .starts_with("inline;"));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(got.header("content-security-policy"), Some("sandbox"));
    assert_eq!(got.header("accept-ranges"), Some("bytes"));
    let etag = format!("\"{}\"", sha256_hex(&picture));
    assert_eq!(got.header("etag"), Some(etag.as_str()));

    let again = server
        .fetch(
            &format!("/v1/attachments/{id}"),
            mike.auth(),
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(
        again.header("cache-control"),
        Some("private, no-cache"),
        "the browser keeps its copy"
    );
    assert!(again.body.is_empty());

    let (history, _) = server.history(&mike, 1, "").await;
    let stored = history.iter().find(|m| m["id"] == message["id"]).unwrap();
    assert_eq!(stored["attachments"], json!([attachment]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_type_comes_from_the_bytes_and_anything_not_an_image_is_a_download() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let page = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>".to_vec();
    let (status, html) = server
        .upload_as(&ava, "cat.png", "image/png", page.clone())
        .await;
    assert_eq!(status, 201);
    assert_ne!(
        html["content_type"], "image/png",
        "the claim is not believed: {html}"
    );
    assert!(html["width"].is_null());
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let (_, svg) = server
        .upload_as(&ava, "logo.svg", "image/svg+xml", svg.to_vec())
        .await;
    let (_, pdf) = server
        .upload_as(&ava, "a.pdf", "text/plain", b"%PDF-1.4\n%rest".to_vec())
        .await;
    assert_eq!(pdf["content_type"], "application/pdf");
    let (_, text) = server
        .upload_as(&ava, "notes.txt", "image/png", "Notes: café ☕\n".into())
        .await;
    assert_eq!(text["content_type"], "text/plain", "{text}");
    let (_, binary) = server
        .upload_as(&ava, "x.txt", "text/plain", vec![0, 1, 2, 200, 255])
        .await;
    assert_eq!(
        binary["content_type"], "application/octet-stream",
        "{binary}"
    );
    let ids = json!([html["id"], svg["id"], pdf["id"]]);
    let (status, _) = server
        .send_body(&ava, 1, &json!({"content": "files", "attachment_ids": ids}))
        .await;
    assert_eq!(status, 201);
    for (file, name) in [(&html, "cat.png"), (&svg, "logo.svg"), (&pdf, "a.pdf")] {
        let got = server
            .fetch(&format!("/v1/attachments/{}", file["id"]), mike.auth(), &[])
            .await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.header("content-type"),
            Some("application/octet-stream"),
            "{name}"
        );
        let disposition = got.header("content-disposition").unwrap();
        assert!(
            disposition.starts_with(&format!("attachment; filename=\"{name}\"")),
            "{disposition}"
        );
        assert_eq!(got.header("content-security-policy"), Some("sandbox"));
        assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
        let thumb = server
            .fetch(
                &format!("/v1/attachments/{}/thumbnail", file["id"]),
                mike.auth(),
                &[],
            )
            .await;
        assert_eq!(thumb.status, 404, "{name} has no thumbnail");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_takes_the_part_named_file() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let picture = jpeg(30, 20);
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n",
    );
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dir/photo.jpg\"\r\nContent-Type: text/plain\r\n\r\n",
    );
    body.extend_from_slice(&picture);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let resp = server
        .http
        .post(server.url("/v1/attachments"))
        .bearer_auth(&ava.token)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let a: Value = resp.json().await.unwrap();
    assert_eq!(a["name"], "photo.jpg", "the directory is dropped");
    assert_eq!(a["content_type"], "image/jpeg");
    assert_eq!(a["size"], picture.len());
    assert_eq!(a["sha256"], sha256_hex(&picture));

    let no_file =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XyZ--\r\n".to_vec();
    assert_error(
        &server
            .upload_as(&ava, "x", "multipart/form-data; boundary=XyZ", no_file)
            .await,
        400,
        "invalid_upload",
    );
    assert_error(
        &server
            .upload_as(&ava, "x", "multipart/form-data", b"junk".to_vec())
            .await,
        400,
        "invalid_upload",
    );
    assert_error(
        &server
            .upload_as(&ava, "empty", "application/octet-stream", Vec::new())
            .await,
        400,
        "invalid_attachment",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_give_206_across_chunks_and_416_outside_the_file() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    // Larger than two 256 KiB chunks, so ranges cross chunk boundaries.
    let bytes = noise(600 * 1024 + 7);
    let (a, _) = sent_to_general(&server, &ava, "data.bin", bytes.clone()).await;
    let path = format!("/v1/attachments/{}", a["id"]);
    let whole = server.fetch(&path, mike.auth(), &[]).await;
    assert_eq!(whole.body, bytes, "a multi-chunk file downloads whole");
    let size = bytes.len();
    let cases = [
        ("bytes=0-9", 0, 10),
        ("bytes=262140-262150", 262_140, 262_151),
        ("bytes=524280-", 524_280, size),
        ("bytes=-100", size - 100, size),
        ("bytes=600000-99999999", 600_000, size),
    ];
    for (range, start, end) in cases {
        let got = server.fetch(&path, mike.auth(), &[("range", range)]).await;
        assert_eq!(got.status, 206, "{range}");
        assert_eq!(got.body, &bytes[start..end], "{range}");
        let expected = format!("bytes {start}-{}/{size}", end - 1);
        assert_eq!(
            got.header("content-range"),
            Some(expected.as_str()),
            "{range}"
        );
        assert_eq!(
            got.header("content-length"),
            Some((end - start).to_string().as_str())
        );
    }
    let outside = server
        .fetch(&path, mike.auth(), &[("range", &format!("bytes={size}-"))])
        .await;
    assert_eq!(outside.status, 416);
    assert_eq!(
        outside.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    assert_eq!(outside.json()["code"], "range_not_satisfiable");
    let stale = server
        .fetch(
            &path,
            mike.auth(),
            &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
        )
        .await;
    assert_eq!(
        (stale.status, stale.body.len()),
        (200, size),
        "a stale If-Range gets the whole file"
    );
    let several = server
        .fetch(&path, mike.auth(), &[("range", "bytes=0-1,5-6")])
        .await;
    assert_eq!(several.status, 200, "several ranges: the whole file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_messages_and_plain_sends_carry_empty_extras() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let plain = server.send(&ava, 1, "just text").await;
    assert_eq!(plain["attachments"], json!([]));
    assert_eq!(plain["reply_to"], Value::Null);
    assert_eq!(plain["reactions"], json!([]));
    assert_eq!(plain["mentions"], json!([]));
    assert_error(
        &server.send_body(&ava, 1, &json!({"content": "  "})).await,
        400,
        "invalid_content",
    );
    assert_error(
        &server
            .send_body(&ava, 1, &json!({"attachment_ids": []}))
            .await,
        400,
        "invalid_json",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_sends_attachments_too() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let a = server
        .upload(&ava, "notes.txt", b"chapter one".to_vec())
        .await;
    let mut ava_ws = server.ws_ready(&ava).await;
    let mut mike_ws = server.ws_ready(&mike).await;
    ava_ws
        .send_json(
            &json!({"type": "send", "group_id": 1, "attachment_ids": [a["id"]], "client_id": "f1"}),
        )
        .await;
    let ack = ava_ws.next_of_type("ack").await;
    assert_eq!(ack["client_id"], "f1");
    let live = mike_ws.expect_type("group_message").await;
    assert_eq!(live["id"], ack["id"]);
    assert_eq!(live["attachments"][0]["id"], a["id"]);
    assert_eq!(live["attachments"][0]["name"], "notes.txt");
    let mike_upload = server.upload(&mike, "mine.txt", b"mike's".to_vec()).await;
    ava_ws
        .send_json(&json!({"type": "send", "group_id": 1, "content": "x", "attachment_ids": [mike_upload["id"]], "client_id": "f2"}))
        .await;
    let err = ava_ws.next_of_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["client_id"].as_str()),
        (Some("invalid_attachment"), Some("f2"))
    );
}
