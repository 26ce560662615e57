//! Structured random CRI requests: every RPC of both services, its request filled by reflection
//! over the API's own descriptors (so a field added to the proto is fuzzed without a line here),
//! with the values that break runtimes: path traversals, NULs, control bytes, 1 MiB strings, edge
//! integers, unknown enum values, 300-entry maps and lists, and the node's real pod, container and
//! image IDs planted in the fields that name objects. Where the caller gives a valid request of an
//! RPC (a template), half of that RPC's requests are the template with one to three of its fields,
//! at any depth, replaced or cleared: those get past the first check and reach the deep ones.
//! One request in sixteen is a message with its bytes mutated. Host paths are drawn only from the caller's list, so that whatever the
//! daemon does with them stays inside the test's dir.

use std::time::Duration;

use berth_cri::prost::Message;
use berth_fuzz::Rng;
use bytes::{Buf, BufMut, Bytes};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// One RPC of the API.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// `Service/Method`, e.g. `RuntimeService/RunPodSandbox`.
    pub name: String,
    path: PathAndQuery,
    input: MessageDescriptor,
    streaming: bool,
}

/// What requests aim at: the node's real objects, and the only values the fields that name host
/// files or cgroups may take.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Pod, container and image IDs and image references that exist (or existed).
    pub ids: Vec<String>,
    /// For `host_path`, `localhost_ref`, checkpoint `location` and the like.
    pub host_paths: Vec<String>,
    /// For a pod's `log_directory`.
    pub log_dirs: Vec<String>,
    /// For a pod's `cgroup_parent`.
    pub cgroup_parents: Vec<String>,
    /// Any other string; traversals and odd values are added to these.
    pub strings: Vec<String>,
    /// Valid requests, encoded, by RPC name (`Service/Method`).
    pub templates: std::collections::HashMap<String, Vec<u8>>,
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Index into [`RequestFuzzer::rpcs`].
    pub rpc: usize,
    pub body: Vec<u8>,
    /// False for mutated bytes that no longer decode as the request message: the gRPC stacks
    /// answer those with Internal before any handler runs, so that code is theirs, not berth's.
    pub decodes: bool,
    /// The request as text, for the report of a bad answer.
    pub shown: String,
}

/// Makes requests from a seeded generator (see `berth_fuzz`).
#[derive(Debug)]
pub struct RequestFuzzer {
    rng: Rng,
    rpcs: Vec<Rpc>,
    /// One 1 MiB string and one 300-entry collection per request at most, so that a request
    /// stays under the daemon's 16 MiB cap.
    huge_string_left: bool,
    huge_collection_left: bool,
}

/// Messages nest this deep at most; below it they are left empty.
const MAX_DEPTH: usize = 6;
/// The size of the "huge" string and collection values.
const HUGE_STRING: usize = 1 << 20;
const HUGE_COLLECTION: usize = 300;

impl RequestFuzzer {
    pub fn new(seed: u64) -> RequestFuzzer {
        let pool = DescriptorPool::decode(berth_cri::FILE_DESCRIPTOR_SET)
            .expect("the CRI descriptors berth-cri compiled");
        let mut rpcs = Vec::new();
        for service in pool.services() {
            for method in service.methods() {
                let name = format!("{}/{}", service.name(), method.name());
                let path = format!("/{}/{}", service.full_name(), method.name());
                rpcs.push(Rpc {
                    name,
                    path: PathAndQuery::try_from(path).expect("a method path"),
                    input: method.input(),
                    streaming: method.is_server_streaming(),
                });
            }
        }
        RequestFuzzer {
            rng: Rng::new(seed),
            rpcs,
            huge_string_left: true,
            huge_collection_left: true,
        }
    }

    pub fn rpcs(&self) -> &[Rpc] {
        &self.rpcs
    }

    /// A request of a random RPC.
    pub fn request(&mut self, targets: &Targets) -> Request {
        let rpc = self.rng.below(self.rpcs.len());
        self.request_of(rpc, targets)
    }

    /// A request of RPC `rpc`.
    pub fn request_of(&mut self, rpc: usize, targets: &Targets) -> Request {
        self.huge_string_left = true;
        self.huge_collection_left = true;
        let input = self.rpcs[rpc].input.clone();
        let template = targets
            .templates
            .get(&self.rpcs[rpc].name)
            .filter(|_| self.rng.one_in(2))
            .and_then(|bytes| DynamicMessage::decode(input.clone(), bytes.as_slice()).ok());
        let message = match template {
            Some(mut message) => {
                for _ in 0..=self.rng.below(3) {
                    self.perturb(&mut message, 0, targets);
                }
                message
            }
            None => self.message(&input, 0, targets),
        };
        let body = message.encode_to_vec();
        if self.rng.one_in(16) {
            let mutated = berth_fuzz::mutate(&mut self.rng, &body, &[]);
            let decodes = DynamicMessage::decode(input, mutated.as_slice()).is_ok();
            let shown = format!("mutated bytes {:02x?}", &mutated[..mutated.len().min(256)]);
            return Request {
                rpc,
                body: mutated,
                decodes,
                shown,
            };
        }
        let mut shown = message.to_text_format();
        if shown.len() > 2048 {
            let mut end = 2048;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
        }
        Request {
            rpc,
            body,
            decodes: true,
            shown,
        }
    }

    fn message(&mut self, desc: &MessageDescriptor, depth: usize, t: &Targets) -> DynamicMessage {
        let mut message = DynamicMessage::new(desc.clone());
        if depth >= MAX_DEPTH {
            return message;
        }
        for field in desc.fields() {
            // Half the fields absent: what kubelet and critest leave out matters as much as
            // what they fill.
            if self.rng.one_in(2) {
                continue;
            }
            let value = self.value(&field, depth, t);
            message.set_field(&field, value);
        }
        message
    }

    /// A value for `field`, whatever its cardinality.
    fn value(&mut self, field: &FieldDescriptor, depth: usize, t: &Targets) -> Value {
        if field.is_map() {
            self.map(field, depth, t)
        } else if field.is_list() {
            let n = self.collection_len();
            Value::List((0..n).map(|_| self.single(field, depth, t)).collect())
        } else {
            self.single(field, depth, t)
        }
    }

    /// Replaces or clears one field of `message` or of a message below it.
    fn perturb(&mut self, message: &mut DynamicMessage, depth: usize, t: &Targets) {
        let fields: Vec<FieldDescriptor> = message.descriptor().fields().collect();
        if fields.is_empty() {
            return;
        }
        let field = self.rng.pick(&fields).clone();
        let descend = depth < MAX_DEPTH && message.has_field(&field) && !self.rng.one_in(3);
        if descend {
            match message.get_field_mut(&field) {
                Value::Message(inner) => return self.perturb(inner, depth + 1, t),
                Value::List(items) if !items.is_empty() => {
                    let i = self.rng.below(items.len());
                    if let Value::Message(inner) = &mut items[i] {
                        return self.perturb(inner, depth + 1, t);
                    }
                }
                _ => {}
            }
        }
        if self.rng.one_in(4) {
            message.clear_field(&field);
            return;
        }
        let value = self.value(&field, depth, t);
        message.set_field(&field, value);
    }

    fn collection_len(&mut self) -> usize {
        if self.huge_collection_left && self.rng.one_in(50) {
            self.huge_collection_left = false;
            HUGE_COLLECTION
        } else {
            self.rng.below(4)
        }
    }

    fn map(&mut self, field: &FieldDescriptor, depth: usize, t: &Targets) -> Value {
        let Kind::Message(entry) = field.kind() else {
            return Value::Map(Default::default());
        };
        let key_field = entry.map_entry_key_field();
        let value_field = entry.map_entry_value_field();
        let n = self.collection_len();
        let mut map = std::collections::HashMap::new();
        for _ in 0..n {
            let key = match self.single(&key_field, depth, t) {
                Value::String(s) => MapKey::String(s),
                Value::I32(v) => MapKey::I32(v),
                Value::I64(v) => MapKey::I64(v),
                Value::U32(v) => MapKey::U32(v),
                Value::U64(v) => MapKey::U64(v),
                Value::Bool(v) => MapKey::Bool(v),
                _ => continue,
            };
            let value = self.single(&value_field, depth, t);
            map.insert(key, value);
        }
        Value::Map(map)
    }

    fn single(&mut self, field: &FieldDescriptor, depth: usize, t: &Targets) -> Value {
        match field.kind() {
            Kind::Message(desc) => Value::Message(self.message(&desc, depth + 1, t)),
            Kind::Enum(desc) => {
                let known: Vec<i32> = desc.values().map(|v| v.number()).collect();
                if self.rng.one_in(5) || known.is_empty() {
                    Value::EnumNumber(*self.rng.pick(&[-1, 7, 99, i32::MAX, i32::MIN]))
                } else {
                    Value::EnumNumber(*self.rng.pick(&known))
                }
            }
            Kind::String => Value::String(self.string(field, t)),
            Kind::Bytes => Value::Bytes(self.bytes(t)),
            Kind::Bool => Value::Bool(self.rng.one_in(2)),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(self.int() as i32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(self.int()),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(self.int() as u32),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(self.int() as u64),
            Kind::Double => Value::F64(self.float()),
            Kind::Float => Value::F32(self.float() as f32),
        }
    }

    fn string(&mut self, field: &FieldDescriptor, t: &Targets) -> String {
        let confined = match field.name() {
            "host_path" | "localhost_ref" | "seccomp_profile_path" | "location" => {
                Some(&t.host_paths)
            }
            "log_directory" => Some(&t.log_dirs),
            "cgroup_parent" => Some(&t.cgroup_parents),
            _ => None,
        };
        if let Some(pool) = confined {
            return self.pick_or_empty(pool);
        }
        let names_an_object = matches!(
            field.name(),
            "pod_sandbox_id"
                | "container_id"
                | "id"
                | "image"
                | "image_ref"
                | "user_specified_image"
                | "runtime_handler"
                | "image_id"
        );
        if names_an_object && !self.rng.one_in(3) {
            return self.pick_or_empty(&t.ids);
        }
        self.odd_string(t)
    }

    fn pick_or_empty(&mut self, pool: &[String]) -> String {
        if pool.is_empty() {
            String::new()
        } else {
            self.rng.pick(pool).clone()
        }
    }

    fn odd_string(&mut self, t: &Targets) -> String {
        const ODD: &[&str] = &[
            "",
            "a",
            "..",
            ".",
            "/",
            "../../../../../../etc/passwd",
            "/etc/shadow",
            "a\0b",
            "\0",
            "\u{1}\u{7}\u{1b}[2J\u{7f}",
            "line\nbreak",
            "\r\n",
            "  ",
            "héllo wörld ☃ 日本",
            "%s%n%x",
            "${HOME}",
            "a=b",
            "=",
            "-",
            "--help",
            "0",
            "-1",
            "NaN",
            "1e309",
            "18446744073709551616",
            "max",
            "*",
            "UPPER_case",
            "xn--",
            "0-3,5",
            "1-0",
            "2Mi",
            "true",
            "/bin/sh",
            "echo",
        ];
        match self.rng.below(10) {
            0 if self.huge_string_left && self.rng.one_in(20) => {
                self.huge_string_left = false;
                "x".repeat(HUGE_STRING)
            }
            0 | 1 if !t.strings.is_empty() => self.rng.pick(&t.strings).clone(),
            2 => {
                let n = *self.rng.pick(&[63, 64, 65, 253, 254, 4096]);
                "a".repeat(n)
            }
            3 => {
                let n = self.rng.below(64);
                (0..n)
                    .map(|_| char::from(32 + self.rng.below(95) as u8))
                    .collect()
            }
            _ => (*self.rng.pick(ODD)).to_owned(),
        }
    }

    fn bytes(&mut self, t: &Targets) -> Bytes {
        if self.rng.one_in(2) {
            let n = self.rng.below(64);
            Bytes::from(self.rng.bytes(n))
        } else {
            Bytes::from(self.odd_string(t).into_bytes())
        }
    }

    fn int(&mut self) -> i64 {
        const EDGES: &[i64] = &[
            0,
            1,
            -1,
            2,
            7,
            255,
            256,
            1000,
            1024,
            4095,
            4096,
            65535,
            65536,
            100_000,
            1 << 31,
            i32::MAX as i64,
            i32::MIN as i64,
            u32::MAX as i64,
            1 << 53,
            1 << 62,
            i64::MAX,
            i64::MIN,
        ];
        if self.rng.one_in(4) {
            self.rng.next_u64() as i64
        } else {
            *self.rng.pick(EDGES)
        }
    }

    fn float(&mut self) -> f64 {
        *self
            .rng
            .pick(&[0.0, -1.0, 0.5, 1e308, f64::NAN, f64::INFINITY])
    }
}

/// How a call ended.
#[derive(Debug)]
pub enum Answer {
    Ok,
    Status(tonic::Status),
    /// No answer within the deadline the caller gave (the client gave up; not a server status).
    TimedOut,
}

/// Sends `request` of `rpc` on `channel` with the gRPC deadline `deadline`. A server-streaming
/// RPC's answer is its first message or status, read for a moment: the stream is then dropped,
/// as a client that goes away would.
pub async fn send(channel: &Channel, rpc: &Rpc, request: Request, deadline: Duration) -> Answer {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    if let Err(e) = grpc.ready().await {
        return Answer::Status(tonic::Status::unavailable(e.to_string()));
    }
    let mut call = tonic::Request::new(request.body);
    call.set_timeout(deadline);
    let outcome = async {
        if rpc.streaming {
            let mut stream = grpc
                .server_streaming(call, rpc.path.clone(), RawCodec)
                .await?
                .into_inner();
            // What the stream holds now is read (its first message's status is the answer);
            // a stream that stays open is then dropped, as a client that goes away would.
            let mut outcome = Ok(());
            while let Ok(next) =
                tokio::time::timeout(Duration::from_millis(200), stream.message()).await
            {
                match next {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(status) => {
                        outcome = Err(status);
                        break;
                    }
                }
            }
            outcome
        } else {
            grpc.unary(call, rpc.path.clone(), RawCodec)
                .await
                .map(|_| ())
        }
    };
    match tokio::time::timeout(deadline + Duration::from_secs(5), outcome).await {
        Ok(Ok(())) => Answer::Ok,
        Ok(Err(status)) => Answer::Status(status),
        Err(_) => Answer::TimedOut,
    }
}

/// Messages as the bytes they are: the requests are encoded by reflection, the answers only
/// counted.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_both_services_is_known_and_requests_decode_as_theirs() {
        let mut fuzzer = RequestFuzzer::new(1);
        let names: Vec<&str> = fuzzer.rpcs().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), 41, "{names:?}");
        assert!(names.contains(&"RuntimeService/RunPodSandbox"));
        assert!(names.contains(&"ImageService/PullImage"));
        let targets = Targets::default();
        for rpc in 0..fuzzer.rpcs().len() {
            for _ in 0..20 {
                let request = fuzzer.request_of(rpc, &targets);
                assert!(request.body.len() < 16 << 20, "{}", fuzzer.rpcs()[rpc].name);
                if !request.shown.starts_with("mutated") {
                    let input = fuzzer.rpcs()[rpc].input.clone();
                    assert!(DynamicMessage::decode(input, request.body.as_slice()).is_ok());
                }
            }
        }
    }
}
