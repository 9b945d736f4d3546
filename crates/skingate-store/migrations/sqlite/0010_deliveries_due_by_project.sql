-- The dispatcher claims due deliveries project by project, in turns (one merchant's backlog must not hold up
-- another's callbacks): each project's due rows are read from here, oldest first, and the projects that have
-- any are found by skipping through it.
CREATE INDEX deliveries_due_by_project ON deliveries (project_id, next_attempt_at) WHERE state = 'pending';
