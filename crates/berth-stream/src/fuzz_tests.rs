//! Every parser of the bytes a streaming client sends, fed mutated valid input and random bytes
//! (`berth-fuzz`): none may panic, and each must make progress or stop.

use bytes::{Bytes, BytesMut};

use crate::remotecommand::{ResizeDecoder, decode_ws};
use crate::spdy::frame::{self, Limits};
use crate::spdy::headers::{Deflater, Inflater, decode_block, encode_block};
use crate::websocket::{self, Message, client_frame};

fn block() -> Vec<u8> {
    encode_block(&[
        (":method", "POST"),
        ("streamtype", "stdout"),
        ("port", "8080"),
        ("requestid", "0"),
    ])
}

#[test]
fn spdy_frames() {
    let compressed = Deflater::new().compress(&block());
    let seeds = vec![
        frame::syn_stream(1, 0, &compressed),
        frame::syn_reply(1, &compressed),
        frame::data(1, true, b"hello"),
        frame::ping(3),
        frame::goaway(1, 0),
        frame::rst_stream(1, 5),
        [frame::ping(1), frame::data(3, false, b"x")].concat(),
    ];
    berth_fuzz::fuzz("spdy frames", &seeds, |input| {
        let mut buf = BytesMut::from(input);
        let limits = Limits::default();
        while let Ok(Some(_)) = frame::parse(&mut buf, &limits) {}
    });
}

#[test]
fn spdy_header_blocks() {
    let seeds = vec![block(), Deflater::new().compress(&block())];
    berth_fuzz::fuzz("spdy header blocks", &seeds, |input| {
        let _ = decode_block(input);
        if let Ok(raw) = Inflater::new().decompress(input) {
            let _ = decode_block(&raw);
        }
    });
}

#[test]
fn websocket_frames() {
    let seeds = vec![
        client_frame(2, b"\x00hello"),
        client_frame(1, b"0aGVsbG8="),
        client_frame(9, b"ping"),
        client_frame(8, &[0x03, 0xe8]),
        client_frame(2, &[7; 300]),
    ];
    berth_fuzz::fuzz("websocket frames", &seeds, |input| {
        let mut buf = BytesMut::from(input);
        let before = buf.len();
        while let Ok(Some(_)) = websocket::parse(&mut buf) {}
        assert!(buf.len() <= before);
    });
}

/// `decode_ws` is the WebSocket channel framing of remotecommand and port-forward alike (a
/// SPDY port-forward's only client input besides frames is its `port` header).
#[test]
fn remotecommand_channels_and_resizes() {
    let seeds = vec![
        b"{\"Width\":80,\"Height\":24}\n".to_vec(),
        b"{\"width\":1,\"height\":2}{\"Width\":3,".to_vec(),
        b"0aGk=".to_vec(),
        b"\x01data".to_vec(),
    ];
    berth_fuzz::fuzz("remotecommand", &seeds, |input| {
        let mut resizes = ResizeDecoder::default();
        let _ = resizes.push(input);
        let _ = decode_ws(Message::Binary(Bytes::copy_from_slice(input)), false);
        let text = String::from_utf8_lossy(input).into_owned();
        let _ = decode_ws(Message::Text(text), true);
    });
}
