//! Images: their size from the header, thumbnails made once within limits, and files that only
//! pretend to be images (a header claiming a billion pixels, a body that does not decode).

use super::*;

/// A PNG whose header says `w`×`h` but whose pixel data is a few zero bytes.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib: a stored block of 16 zero bytes: far too little for the picture it claims.
    let mut idat = vec![0x78, 0x01, 0x01, 16, 0, !16, 0xff];
    idat.extend_from_slice(&[0; 16]);
    idat.extend_from_slice(&[0x00, 0x10, 0x00, 0x01]); // its Adler-32
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

async fn thumbnail(server: &TestServer, who: &Session, id: &Value) -> Fetched {
    server
        .fetch(&format!("/v1/attachments/{id}/thumbnail"), who.auth(), &[])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_fit_320_pixels_and_are_made_once() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    let (wide, _) = sent_to_general(&server, &ava, "wide.jpg", jpeg(1000, 500)).await;
    let got = thumbnail(&server, &mike, &wide["id"]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("image/jpeg"));
    let small = image::load_from_memory(&got.body).unwrap();
    assert_eq!((small.width(), small.height()), (320, 160));

    let transparent = {
        let img =
            image::RgbaImage::from_fn(200, 900, |x, _| image::Rgba([0, 0, 0, (x % 256) as u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let (tall, _) = sent_to_general(&server, &ava, "tall.png", transparent).await;
    let got = thumbnail(&server, &mike, &tall["id"]).await;
    assert_eq!(
        got.header("content-type"),
        Some("image/png"),
        "transparency is kept"
    );
    let small = image::load_from_memory(&got.body).unwrap();
    assert_eq!((small.width(), small.height()), (71, 320));
    assert!(small.color().has_alpha());

    let kept =
        server.sql_number("SELECT count(*) FROM attachment_thumbnails WHERE data IS NOT NULL");
    assert_eq!(kept, 2);
    // Made once: the kept one is served (the row changed under the server shows through).
    let bytes = if on_postgres() {
        "'\\xffd8ff'"
    } else {
        "x'ffd8ff'"
    };
    server.sql(&format!(
        "UPDATE attachment_thumbnails SET data = {bytes} WHERE attachment_id = {}",
        wide["id"]
    ));
    let again = thumbnail(&server, &ava, &wide["id"]).await;
    assert_eq!(again.body, [0xff, 0xd8, 0xff]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_or_a_broken_image_gets_no_thumbnail_and_breaks_nothing() {
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    // 100,000 × 100,000 pixels claimed in a few dozen bytes: 30 GB if it were decoded.
    let bomb = png_claiming(100_000, 100_000);
    let (a, _) = sent_to_general(&server, &ava, "bomb.png", bomb.clone()).await;
    assert_eq!(a["content_type"], "image/png");
    assert_eq!(
        (a["width"].as_i64(), a["height"].as_i64()),
        (Some(100_000), Some(100_000))
    );
    assert_eq!(
        thumbnail(&server, &mike, &a["id"]).await.status,
        404,
        "over 40 megapixels"
    );
    let got = server
        .fetch(&format!("/v1/attachments/{}", a["id"]), mike.auth(), &[])
        .await;
    assert_eq!(got.body, bomb, "the file itself is still there to download");

    // Under the limit but its data does not decode: no thumbnail, recorded as such.
    let (broken, _) = sent_to_general(&server, &ava, "broken.png", png_claiming(2000, 2000)).await;
    assert_eq!(thumbnail(&server, &mike, &broken["id"]).await.status, 404);
    assert_eq!(thumbnail(&server, &mike, &broken["id"]).await.status, 404);
    let none = server.sql_number("SELECT count(*) FROM attachment_thumbnails WHERE data IS NULL");
    assert_eq!(none, 1, "the failure is kept, not retried");

    // Something that only starts like a PNG is no image at all.
    let (status, fake) = server
        .upload_as(
            &ava,
            "fake.png",
            "image/png",
            b"\x89PNG\r\n\x1a\nnot really".to_vec(),
        )
        .await;
    assert_eq!(status, 201);
    assert!(fake["width"].is_null(), "{fake}");
    let (_, m) = server
        .send_body(&ava, 1, &json!({"attachment_ids": [fake["id"]]}))
        .await;
    let got = server
        .fetch(
            &format!("/v1/attachments/{}", m["attachments"][0]["id"]),
            mike.auth(),
            &[],
        )
        .await;
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    // The server is fine: a normal image still gets its thumbnail.
    let (ok, _) = sent_to_general(&server, &ava, "fine.png", png(10, 10)).await;
    assert_eq!(thumbnail(&server, &mike, &ok["id"]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_asked_for_and_abandoned_is_still_made_once_and_kept() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let (ava, mike) = (server.ava().await, server.mike().await);
    // A large image keeps the one decoder busy while the second request waits its turn.
    let big = {
        let img = image::RgbImage::from_fn(2000, 2000, |x, y| {
            image::Rgb([((x / 50) ^ (y / 50)) as u8, 0, 0])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::NoFilter,
        );
        img.write_with_encoder(encoder).unwrap();
        out.into_inner()
    };
    let (big, _) = sent_to_general(&server, &ava, "big.png", big).await;
    let (small, _) = sent_to_general(&server, &ava, "small.png", png(400, 300)).await;
    let first = {
        let (api, mike, id) = (server.api.clone(), mike.clone(), big["id"].clone());
        tokio::spawn(async move { thumbnail_of(&api, &mike, &id).await })
    };
    wait_for_metric(&server, "chatserver_thumbnails_waiting", 1).await;
    // Mike asks for the small one, and hangs up while it waits its turn (a closed tab).
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /v1/attachments/{}/thumbnail HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
        small["id"], mike.token
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    wait_for_metric(&server, "chatserver_thumbnails_waiting", 2).await;
    drop(tcp);
    assert_eq!(first.await.unwrap(), 200);
    // Its decode still runs, once, and is kept: asking again decodes nothing.
    wait_for_metric(&server, "chatserver_thumbnails_made_total", 2).await;
    wait_for_metric(&server, "chatserver_thumbnails_waiting", 0).await;
    assert_eq!(thumbnail_of(&server, &mike, &small["id"]).await, 200);
    assert_eq!(thumbnail_of(&server, &ava, &big["id"]).await, 200);
    assert_eq!(metric(&server, "chatserver_thumbnails_made_total").await, 2);
}

async fn thumbnail_of(api: &Api, who: &Session, id: &Value) -> u16 {
    api.fetch(&format!("/v1/attachments/{id}/thumbnail"), who.auth(), &[])
        .await
        .status
}

async fn metric(api: &Api, name: &str) -> i64 {
    let text = String::from_utf8(api.fetch("/metrics", None, &[]).await.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Waits (within the test timeout) until the metric `name` reads `value`.
async fn wait_for_metric(api: &Api, name: &str, value: i64) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while metric(api, name).await != value {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never reached {value}"
        );
    }
}
