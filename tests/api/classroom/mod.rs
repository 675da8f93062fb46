//! A class: announcement groups and muting over HTTP and the socket, the teacher's commands
//! (groups, a class list imported at once), and the database as one file after a clean stop.

mod import;
mod moderation;
mod server_files;
mod teacher_cli;
