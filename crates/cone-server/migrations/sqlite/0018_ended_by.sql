-- Who ended a grant before its time: the requester who gave it back, or the administrator who withdrew it (NULL
-- when Cone ended it, as when its holder left), so that the requester is told who and why.
ALTER TABLE tasks ADD COLUMN ended_by INTEGER REFERENCES users(id);
