//! What an upload may not do: pass the size limit (declared or not), pass the quota, or be
//! attached by anyone but its uploader, and more than ten to a message.

use super::*;

const LIMIT: u64 = 64 * 1024;

async fn small_limits() -> TestServer {
    TestServer::start_with(|c| {
        c.max_attachment = LIMIT;
        // Two 60 KiB files and a 30 KiB one, each also counting 4 KiB: 162 KiB.
        c.attachment_quota = 170 * 1024;
    })
    .await
}

fn used(server: &TestServer) -> (i64, i64) {
    let row = &server.sql("SELECT count(*), coalesce(sum(size), 0) FROM attachments")[0];
    (row[0].parse().unwrap(), row[1].parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_upload_is_refused_whether_or_not_its_length_is_declared() {
    let server = small_limits().await;
    let ava = server.ava().await;
    let exact = server
        .upload(&ava, "exact.bin", noise(LIMIT as usize))
        .await;
    assert_eq!(exact["size"], LIMIT);
    let before = used(&server);
    assert_error(
        &server
            .upload_as(
                &ava,
                "big.bin",
                "application/octet-stream",
                noise(LIMIT as usize + 1),
            )
            .await,
        413,
        "payload_too_large",
    );

    // Chunked: no length to refuse up front; it is cut off as it passes the limit.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut request = format!(
        "POST /v1/attachments?name=c.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        ava.token
    );
    for _ in 0..(LIMIT / 1024 + 8) {
        request.push_str(&format!("400\r\n{}\r\n", "z".repeat(1024)));
    }
    request.push_str("0\r\n\r\n");
    let (status, _, body) = raw_http(&mut tcp, &request).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    assert_eq!(used(&server), before, "nothing of a refused upload is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_counts_what_a_user_stores_and_refuses_what_would_pass_it() {
    let server = small_limits().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    server.upload(&ava, "a.bin", noise(60 * 1024)).await;
    server.upload(&ava, "b.bin", noise(60 * 1024)).await;
    assert_error(
        &server
            .upload_as(&ava, "c.bin", "application/octet-stream", noise(60 * 1024))
            .await,
        413,
        "quota_exceeded",
    );
    let (count, bytes) = used(&server);
    assert_eq!(
        (count, bytes),
        (2, 120 * 1024),
        "the refused upload left nothing"
    );
    // What still fits, fits; and the quota is per user.
    server.upload(&ava, "d.bin", noise(30 * 1024)).await;
    server.upload(&mike, "e.bin", noise(60 * 1024)).await;
    // Each file also counts 4 KiB, so many tiny files cannot fill the disk past the quota:
    // 42 one-byte files fit in 170 KiB (42 × 4097 = 172,074 bytes), the 43rd does not.
    let tiny = server.new_user("tiny").await;
    for i in 0..42 {
        server.upload(&tiny, &format!("{i}"), vec![1]).await;
    }
    let refused = server
        .upload_as(&tiny, "43", "application/octet-stream", vec![1])
        .await;
    assert_error(&refused, 413, "quota_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_your_own_finished_uploads_can_be_attached_and_at_most_ten() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let mine = server.upload(&ava, "mine.txt", b"ava's".to_vec()).await;
    let theirs = server.upload(&mike, "theirs.txt", b"mike's".to_vec()).await;
    let (before, _) = server.history(&ava, 1, "").await;
    for (ids, why) in [
        (json!([theirs["id"]]), "someone else's upload"),
        (json!([987_654]), "no such upload"),
        (json!([mine["id"], mine["id"]]), "the same twice"),
        (json!(vec![mine["id"].clone(); 11]), "eleven"),
    ] {
        eprintln!("attaching {why}");
        let body = json!({"content": "look", "attachment_ids": ids});
        assert_error(
            &server.send_body(&ava, 1, &body).await,
            400,
            "invalid_attachment",
        );
    }
    assert_error(
        &server
            .send_body(&ava, 1, &json!({"content": "x", "attachment_ids": ["1"]}))
            .await,
        400,
        "invalid_json",
    );
    let (after, _) = server.history(&ava, 1, "").await;
    assert_eq!(before.len(), after.len(), "no refused send was stored");
    // Mike may not fetch Ava's upload that was sent nowhere, nor use its id in a send.
    let got = server
        .fetch(&format!("/v1/attachments/{}", mine["id"]), mike.auth(), &[])
        .await;
    assert_eq!(got.status, 403);
    assert_eq!(got.json()["code"], "forbidden");
    let ten: Vec<Value> = {
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(
                server
                    .upload(&ava, &format!("{i}.txt"), vec![b'a' + i])
                    .await["id"]
                    .clone(),
            );
        }
        ids
    };
    let (status, m) = server
        .send_body(&ava, 1, &json!({"attachment_ids": ten}))
        .await;
    assert_eq!(status, 201);
    let names: Vec<&str> = m["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "0.txt", "1.txt", "2.txt", "3.txt", "4.txt", "5.txt", "6.txt", "7.txt", "8.txt",
            "9.txt"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_has_at_most_four_uploads_in_progress() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    // Four uploads that have begun (a byte of the body is in) and wait for the rest.
    let mut open = Vec::new();
    for i in 0..4 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /v1/attachments?name=slow{i}.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {}\r\nContent-Length: 2\r\n\r\nx",
            ava.token
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        open.push(tcp);
    }
    // The server counts them as they arrive: wait until the four rows exist.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while used(&server).0 < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the four uploads never began"
        );
        tokio::task::yield_now().await;
    }
    let refused = server
        .upload_as(&ava, "fifth.bin", "application/octet-stream", b"y".to_vec())
        .await;
    assert_error(&refused, 429, "rate_limited");
    server.upload(&mike, "others.bin", b"z".to_vec()).await;
    // One finishes: a place is free again.
    let (status, _, body) = raw_http(&mut open[0], "y").await;
    assert_eq!(status, 201, "{body}");
    server.upload(&ava, "now.bin", b"w".to_vec()).await;
}

/// An upload that has begun (its headers and a first byte sent), waiting for the rest.
async fn begun(
    server: &TestServer,
    who: &Session,
    head_extra: &str,
    first: &str,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/attachments?name=held.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {}\r\nContent-Length: 500\r\n{head_extra}\r\n{first}",
        who.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_holds_its_place_before_its_file_part_and_cannot_pad_it() {
    let server = TestServer::start().await;
    let mike = server.mike().await;
    let form = "Content-Type: multipart/form-data; boundary=B\r\n";
    let held = begun(&server, &mike, form, "--B\r\n").await;
    let _raw = [
        begun(&server, &mike, "", "x").await,
        begun(&server, &mike, "", "x").await,
        begun(&server, &mike, "", "x").await,
    ];
    // The form (no file part yet, so no row) and three raw uploads hold Mike's four places.
    // Once the raw ones have begun (their rows exist) every held request has been taken in,
    // so no attempt below can take a place before one of them and leave it refused.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while used(&server).0 < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the raw uploads never began"
        );
        tokio::task::yield_now().await;
    }
    loop {
        let got = server
            .upload_as(
                &mike,
                "fifth.bin",
                "application/octet-stream",
                b"y".to_vec(),
            )
            .await;
        if got.0 == 429 {
            assert_error(&got, 429, "rate_limited");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a fifth upload was never refused: {}",
            got.1
        );
    }
    drop(held);
    loop {
        let (status, _) = server
            .upload_as(
                &mike,
                "after.bin",
                "application/octet-stream",
                b"y".to_vec(),
            )
            .await;
        if status == 201 {
            break; // the abandoned form gave its place back
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the form's place never came back"
        );
    }
    // Parts before the file part are kept in memory by the parser: more than 64 KiB is refused.
    let ava = server.ava().await;
    let mut body = Vec::new();
    body.extend_from_slice(b"--B\r\nContent-Disposition: form-data; name=\"pad\"\r\n\r\n");
    body.extend_from_slice(&noise(200 * 1024));
    body.extend_from_slice(
        b"\r\n--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nok\r\n--B--\r\n",
    );
    let got = server
        .upload_as(&ava, "x", "multipart/form-data; boundary=B", body)
        .await;
    assert_error(&got, 400, "invalid_upload");
}
