//! A class in the browser: the teacher makes a group from the page and the students see it
//! live; messages are edited, deleted, searched; the teacher moderates; people start direct
//! chats, sign up, and change their name and password. Every step at both sizes.

use super::*;
use crate::helpers::*;

/// A server with a teacher and a student (Alice) made over HTTP; Bob signs up in the page.
struct Class {
    server: TestServer,
    page: String,
}

async fn class() -> Class {
    let server = TestServer::start().await;
    server.new_user("teacher").await;
    server.new_user("alice").await;
    let page = format!("http://{}/", server.addr);
    Class { server, page }
}

async fn group_made_in_the_page_reaches_the_students_live(size: Size) {
    let Some(mut b) = chromium().await else {
        return;
    };
    let Class { server, page } = class().await;
    let (teacher, alice, bob) = (
        b.tab(&page, size).await,
        b.tab(&page, size).await,
        b.tab(&page, size).await,
    );

    // Bob signs up in the page; a taken name is refused with the server's reason first.
    b.wait_for(
        &bob,
        "window.__t && __t.button('Create an account')",
        "the sign-up switch",
    )
    .await;
    b.snap(&bob, size, "login").await;
    b.click(&bob, "Create an account").await;
    b.fill(&bob, "Username", "alice").await;
    b.fill(&bob, "Email", "bob@example.test").await;
    b.fill(&bob, "Password", PASSWORD).await;
    b.click(&bob, "Sign up").await;
    b.sees(&bob, "already taken").await;
    b.fill(&bob, "Username", "bob").await;
    b.click(&bob, "Sign up").await;
    b.connected(&bob, "bob").await;
    b.sees(&bob, "No conversations yet").await;

    b.log_in(&teacher, "teacher", PASSWORD).await;
    b.log_in(&alice, "alice", PASSWORD).await;

    // The teacher makes the group and picks its members from a search of people.
    b.click(&teacher, "New group").await;
    b.fill(&teacher, "Group name", "Class 4B").await;
    b.fill(&teacher, "Find people", "ali").await;
    b.click(&teacher, "Add alice").await;
    b.fill(&teacher, "Find people", "bo").await;
    b.click(&teacher, "Add bob").await;
    b.snap(&teacher, size, "new-group").await;
    b.click(&teacher, "Create group").await;
    b.wait_for(
        &teacher,
        "document.querySelector('#chat-name').textContent === 'Class 4B'",
        "the new group open",
    )
    .await;

    // Both students see it appear without reloading, and the class chats.
    b.open(&alice, "Class 4B").await;
    b.open(&bob, "Class 4B").await;
    b.say(&alice, "Hi class").await;
    b.sees_message(&bob, "Hi class").await;
    b.say(&bob, "Hi Alice").await;
    b.sees_message(&alice, "Hi Alice").await;
    b.sees_message(&teacher, "Hi Alice").await;
    b.sees(&teacher, "Today").await; // the day's separator
    b.snap(&teacher, size, "chat").await;

    // Alice edits hers; the teacher deletes Bob's. Everyone sees both at once.
    b.on_message(&alice, "Hi class", "Edit").await;
    b.fill(&alice, "Edit message", "Hi class!").await;
    b.click(&alice, "Save").await;
    b.sees_message(&bob, "Hi class!").await;
    b.on_message(&teacher, "Hi Alice", "Delete").await;
    b.click(&teacher, "Yes, delete").await;
    b.sees_message(&alice, "message deleted").await;
    b.sees_message(&bob, "message deleted").await;

    let ava = server.new_user("checker").await;
    assert_eq!(
        server.search_ids(&ava, "class").await.len(),
        0,
        "outsiders find nothing"
    );
    for tab in [&teacher, &alice, &bob] {
        b.no_errors(tab).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_made_in_the_page_reaches_the_students_live_on_a_desktop() {
    group_made_in_the_page_reaches_the_students_live(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_made_in_the_page_reaches_the_students_live_on_a_phone() {
    group_made_in_the_page_reaches_the_students_live(PHONE).await;
}

/// The same class with a group made over HTTP: teacher (owner), alice and bob.
async fn class_with_group(b: &mut Browser, size: Size) -> (TestServer, [String; 3]) {
    let Class { server, page } = class().await;
    let teacher = server.session("teacher", PASSWORD).await;
    let alice = server.session("alice", PASSWORD).await;
    let bob = server.new_user("bob").await;
    let group = server
        .create_group(&teacher, "Class 4B", &[alice.id, bob.id])
        .await;
    server.send(&teacher, group, "Welcome to class").await;
    let tabs = [
        b.tab(&page, size).await,
        b.tab(&page, size).await,
        b.tab(&page, size).await,
    ];
    for (tab, who) in tabs.iter().zip(["teacher", "alice", "bob"]) {
        b.log_in(tab, who, PASSWORD).await;
    }
    (server, tabs)
}

async fn the_teacher_moderates_and_manages_the_group(size: Size) {
    let Some(mut b) = chromium().await else {
        return;
    };
    let (_server, [teacher, alice, bob]) = class_with_group(&mut b, size).await;
    for tab in [&teacher, &alice, &bob] {
        b.open(tab, "Class 4B").await;
    }

    // Announcements: the students' composers close, live.
    b.click(&teacher, "Conversation details").await;
    b.toggle(&teacher, "Announcements: only the owner and admins post")
        .await;
    b.sees(&alice, "Only the owner and admins post in this group.")
        .await;
    b.sees(&bob, "Only the owner and admins post in this group.")
        .await;
    b.snap(&teacher, size, "details").await;
    b.snap(&alice, size, "announcements").await;
    b.toggle(&teacher, "Announcements: only the owner and admins post")
        .await;
    b.no_longer_sees(&alice, "Only the owner and admins post")
        .await;

    // Muting Alice closes hers, with the time; unmuting opens it again.
    b.click(&teacher, "Mute alice").await;
    b.sees(&alice, "You are muted here until").await;
    b.click(&teacher, "Unmute alice").await;
    b.no_longer_sees(&alice, "You are muted here").await;
    b.say(&alice, "thanks!").await;

    // A rename shows everywhere; Bob is removed (his list loses it) and added back.
    b.fill(&teacher, "Group name", "Class 4B (maths)").await;
    b.click(&teacher, "Rename").await;
    b.sees(&alice, "Class 4B (maths)").await;
    b.click(&teacher, "Remove bob").await;
    b.no_longer_sees(&bob, "Class 4B").await;
    b.click(&teacher, "Add members").await;
    b.fill(&teacher, "Find people", "bob").await;
    b.click(&teacher, "Add bob").await;
    b.click(&teacher, "Add").await;
    b.sees(&bob, "Class 4B (maths)").await;

    // Alice leaves; then the teacher deletes the group, and it is gone for Bob too.
    b.open(&alice, "Class 4B (maths)").await;
    b.click(&alice, "Conversation details").await;
    b.click(&alice, "Leave group").await;
    b.no_longer_sees(&alice, "Class 4B (maths)").await;
    b.click(&teacher, "Delete group").await;
    b.click(&teacher, "Yes, delete it").await;
    b.no_longer_sees(&bob, "Class 4B (maths)").await;
    for tab in [&teacher, &alice, &bob] {
        b.no_errors(tab).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teacher_moderates_and_manages_the_group_on_a_desktop() {
    the_teacher_moderates_and_manages_the_group(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_teacher_moderates_and_manages_the_group_on_a_phone() {
    the_teacher_moderates_and_manages_the_group(PHONE).await;
}

async fn search_direct_chats_and_ones_own_account(size: Size) {
    let Some(mut b) = chromium().await else {
        return;
    };
    let (server, [_teacher, alice, bob]) = class_with_group(&mut b, size).await;

    // A search result opens its conversation at the message.
    b.fill(&bob, "Search", "welcome").await;
    let result = "document.querySelector('#search-results .result')";
    b.wait_for(&bob, result, "a search result").await;
    b.snap(&bob, size, "search").await;
    b.eval(&bob, &format!("{result}.click(), true")).await;
    b.wait_for(
        &bob,
        "document.querySelector('#messages .msg.found')",
        "the found message shown",
    )
    .await;

    // A direct chat started from a search of people; it appears live for the other.
    b.click(&alice, "New direct chat").await;
    b.fill(&alice, "Find people", "bob").await;
    b.click(&alice, "Pick bob").await;
    b.wait_for(
        &alice,
        "document.querySelector('#chat-name').textContent === 'bob'",
        "the direct chat open",
    )
    .await;
    b.say(&alice, "psst, Bob").await;
    b.open(&bob, "alice").await;
    b.sees_message(&bob, "psst, Bob").await;

    // Bob's display name and password, from the settings.
    b.click(&bob, "Settings for bob").await;
    b.fill(&bob, "Display name", "Bob B.").await;
    b.click(&bob, "Save name").await;
    b.sees(&bob, "Saved.").await;
    b.snap(&bob, size, "settings").await;
    b.fill(&bob, "Current password", "not the password").await;
    b.fill(&bob, "New password", "another-password-1").await;
    b.click(&bob, "Change password").await;
    b.sees(&bob, "current password is wrong").await;
    b.fill(&bob, "Current password", PASSWORD).await;
    b.click(&bob, "Change password").await;
    b.wait_for(
        &bob,
        "!document.querySelector('#settings-dialog').open",
        "the settings closed",
    )
    .await;
    b.connected(&bob, "bob").await;
    b.wait_for(
        &bob,
        "document.querySelector('#me').textContent === 'Bob B.'",
        "the new name in the bar",
    )
    .await;
    let (token, _, _) = server.login("bob", "another-password-1").await;
    assert!(!token.is_empty());
    b.say(&bob, "still here after the new password").await;
    b.sees_message(&alice, "still here after the new password")
        .await;

    b.click(&bob, "Log out").await;
    b.wait_for(&bob, "__t.button('Log in')", "the login form")
        .await;
    for tab in [&alice, &bob] {
        b.no_errors(tab).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_direct_chats_and_ones_own_account_on_a_desktop() {
    search_direct_chats_and_ones_own_account(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_direct_chats_and_ones_own_account_on_a_phone() {
    search_direct_chats_and_ones_own_account(PHONE).await;
}
