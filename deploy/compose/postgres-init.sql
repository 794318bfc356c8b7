-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d/).
-- Two databases: the HA ledger (leadership row, fenced actions, positions) and the responder's
-- alert history. Apart so that each can be backed up, restored or moved on its own.
CREATE DATABASE tradeguard_ledger;
CREATE DATABASE tradeguard_alerts;
