-- Requests that follow their policy's emergency steps (`--emergency-access`, or escalated while pending).
ALTER TABLE tasks ADD COLUMN emergency INTEGER NOT NULL DEFAULT 0;
