//! Where attachments live and when they go: inside the database file (across restarts), out of
//! reach once their message is deleted, and removed a day after nothing refers to them.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_live_inside_the_database_and_survive_a_restart() {
    let mut server = TestServer::start().await;
    let ava = server.ava().await;
    let bytes = noise(300 * 1024);
    let (a, _) = sent_to_general(&server, &ava, "big.bin", bytes.clone()).await;
    let row = &server.sql(&format!(
        "SELECT count(*), sum(length(data)) FROM attachment_chunks WHERE attachment_id = {}",
        a["id"]
    ))[0];
    let (chunks, stored): (i64, i64) = (row[0].parse().unwrap(), row[1].parse().unwrap());
    assert_eq!(
        (chunks, stored),
        (2, bytes.len() as i64),
        "two chunk rows hold the bytes"
    );
    server.restart().await;
    let mike = server.mike().await;
    let got = server
        .fetch(&format!("/v1/attachments/{}", a["id"]), mike.auth(), &[])
        .await;
    assert_eq!((got.status, got.body == bytes), (200, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_message_takes_its_attachments_out_of_members_reach() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let (a, message) = sent_to_general(&server, &ava, "photo.png", png(20, 20)).await;
    let path = format!("/v1/attachments/{}", a["id"]);
    assert_eq!(server.fetch(&path, mike.auth(), &[]).await.status, 200);
    let mut mike_ws = server.ws_ready(&mike).await;
    let (status, _) = server
        .delete_message(&ava, message["id"].as_i64().unwrap())
        .await;
    assert_eq!(status, 204);
    mike_ws.expect_type("message_deleted").await;
    let (history, _) = server.history(&mike, 1, "").await;
    let tombstone = history.iter().find(|m| m["id"] == message["id"]).unwrap();
    assert_eq!(tombstone["attachments"], json!([]));
    assert_eq!(server.fetch(&path, mike.auth(), &[]).await.status, 403);
    let thumb = format!("{path}/thumbnail");
    assert_eq!(server.fetch(&thumb, mike.auth(), &[]).await.status, 403);
    assert_eq!(
        server.fetch(&path, ava.auth(), &[]).await.status,
        200,
        "the uploader still may"
    );
    let refs = server.sql_number("SELECT count(*) FROM message_attachments");
    assert_eq!(refs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_nothing_refers_to_goes_after_a_day() {
    let mut server = TestServer::start().await;
    let ava = server.ava().await;
    let kept = sent_to_general(&server, &ava, "kept.txt", b"sent".to_vec())
        .await
        .0;
    let fresh = server.upload(&ava, "fresh.txt", b"new".to_vec()).await;
    let stale = server.upload(&ava, "stale.txt", b"old".to_vec()).await;
    let (_, deleted_msg) = sent_to_general(&server, &ava, "gone.txt", b"deleted".to_vec()).await;
    let gone = deleted_msg["attachments"][0].clone();
    server
        .delete_message(&ava, deleted_msg["id"].as_i64().unwrap())
        .await;
    // A day and a minute ago, for all but the fresh one.
    server.sql(&format!(
        "UPDATE attachments SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1441 minutes')
         WHERE id IN ({}, {}, {})",
        kept["id"], stale["id"], gone["id"]
    ));
    // An unfinished upload left by a crash.
    server.sql("INSERT INTO attachments (uploader_id, name, size) VALUES (1, 'half.bin', 10)");
    server.restart().await;
    let ava = server.ava().await;
    let status = |id: &Value| {
        let (api, token) = (server.api.clone(), ava.token.clone());
        let path = format!("/v1/attachments/{id}");
        async move { api.fetch(&path, Some(&token), &[]).await.status }
    };
    assert_eq!(status(&kept["id"]).await, 200, "a message refers to it");
    assert_eq!(status(&fresh["id"]).await, 200, "not a day old yet");
    assert_eq!(status(&stale["id"]).await, 404, "never sent, a day old");
    assert_eq!(status(&gone["id"]).await, 404, "its message was deleted");
    let left: Vec<String> = server
        .sql("SELECT name FROM attachments ORDER BY id")
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    assert_eq!(
        left,
        ["kept.txt", "fresh.txt"],
        "the chunks and the unfinished upload went too"
    );
    let chunks = server.sql_number("SELECT count(*) FROM attachment_chunks");
    assert_eq!(chunks, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_its_client_stops_reading_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server =
        TestServer::start_with(|c| c.net.body_timeout = std::time::Duration::from_secs(1)).await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let bytes = noise(10 * 1024 * 1024);
    let (a, _) = sent_to_general(&server, &ava, "big.bin", bytes.clone()).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(server.addr).await.unwrap();
    let request = format!(
        "GET /v1/attachments/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
        a["id"], mike.token
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The client stalls (a frozen tab) for three body timeouts, then reads what it can.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(TIMEOUT, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the server neither sent nor closed"),
        }
    }
    assert!(
        got < bytes.len(),
        "a client that stopped reading got all {got} bytes"
    );
    // Everyone else is served as before.
    let whole = server
        .fetch(&format!("/v1/attachments/{}", a["id"]), mike.auth(), &[])
        .await;
    assert_eq!(whole.body.len(), bytes.len());
}
