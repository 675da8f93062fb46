//! What a message carries besides text and files: the message it answers, reactions, and the
//! members it mentions; over HTTP and live on every member's socket.

mod mentions;
mod reactions;
mod replies;
