-- A new message is queued for search by the send itself (`store::search::queue`), not by a
-- trigger. A trigger made every message insert a statement that writes more than one row, and
-- SQLite keeps a statement journal for such a statement inside a transaction (a copy of each
-- page it first touches, so that it can undo itself alone): about a tenth of the writer
-- thread's time under load. Sending is the only thing that inserts messages; the delete and
-- update triggers of V6 stay.
DROP TRIGGER messages_fts_insert;
