-- One database per service on the compose PostgreSQL server (run once, on the first
-- start of an empty data volume, by the postgres image's entrypoint). Each service owns
-- its database and migrates it itself; none reads another's tables. "order" is quoted:
-- it is an SQL keyword.
CREATE DATABASE catalog;
CREATE DATABASE "order";
CREATE DATABASE payment;
CREATE DATABASE notification;
