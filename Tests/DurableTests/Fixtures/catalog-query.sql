-- Normalised catalog of one schema, one fact per row, sorted (byte order).
-- $1 = the schema to inspect, as a plain name (e.g. dbos, select, we"ird sch), not quoted.
--
-- Every reference to the inspected schema inside deparsed text (quoted or unquoted form, e.g.
-- dbos.x, "select".x, "we""ird sch".x) is replaced by SCHEMA, so two schemas built by the same
-- DDL compare equal. Foreign-key targets and trigger functions are printed by PostgreSQL
-- qualified or not depending on search_path; they are rebuilt here from the catalog so the
-- output does not depend on search_path. Object names (tables, columns, constraints, indexes,
-- triggers, functions) are kept as they are: they are part of the schema being compared.
--
-- Fact kinds: relation, column, constraint, index, function, trigger, type.
-- Ownership, privileges, comments and function bodies are deliberately left out.
-- NOT NULL is reported on the column line; PostgreSQL 18's separate NOT NULL constraint rows
-- (contype 'n') are skipped so the output is the same on 15..18.
WITH target AS (
    SELECT n.oid AS nsp,
           quote_ident(n.nspname) AS qi,                                 -- dbos / "select"
           '"' || replace(n.nspname, '"', '""') || '"' AS qq             -- "dbos" / "select"
    FROM pg_catalog.pg_namespace n
    WHERE n.nspname = $1
),
pattern AS (
    -- A regular expression matching "<schema>." where it starts a qualified name.
    SELECT t.*,
           '(^|[^A-Za-z0-9_$"])'
             || regexp_replace(t.qi, '([.^$*+?(){}|\\[\]])', '\\\1', 'g') || '\.' AS re_qi,
           '(^|[^A-Za-z0-9_$"])'
             || regexp_replace(t.qq, '([.^$*+?(){}|\\[\]])', '\\\1', 'g') || '\.' AS re_qq
    FROM target t
),
facts AS (
    -- Tables, views, sequences, ... (indexes are listed as index facts below).
    SELECT 'relation ' || c.relname
           || ' kind=' || c.relkind::text
           || ' persistence=' || c.relpersistence::text AS fact
    FROM pg_catalog.pg_class c
    JOIN target t ON c.relnamespace = t.nsp
    WHERE c.relkind NOT IN ('i', 'I', 't')

    UNION ALL
    -- Columns, with their position among the live columns (so column order is compared).
    SELECT 'column ' || c.relname
           || ' ' || lpad(row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)::text, 3, '0')
           || ' ' || a.attname
           || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
           || coalesce(' DEFAULT ' || regexp_replace(regexp_replace(
                  pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                  p.re_qi, '\1SCHEMA.', 'g'), p.re_qq, '\1SCHEMA.', 'g'), '')
           || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
           || CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END
           || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                   THEN ' COLLATE ' || co.collname ELSE '' END
    FROM pg_catalog.pg_class c
    JOIN pattern p ON c.relnamespace = p.nsp
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')

    UNION ALL
    -- Constraints (primary key, unique, foreign key, check, exclusion).
    SELECT 'constraint ' || c.relname || ' ' || k.conname || ' ' || k.contype::text || ' '
           || regexp_replace(regexp_replace(
                  CASE WHEN k.contype = 'f' THEN
                      replace(replace(pg_catalog.pg_get_constraintdef(k.oid),
                          ' REFERENCES ' || quote_ident(fn.nspname) || '.' || quote_ident(fc.relname) || '(',
                          ' REFERENCES ' || CASE WHEN fn.oid = p.nsp THEN 'SCHEMA' ELSE quote_ident(fn.nspname) END
                              || '.' || quote_ident(fc.relname) || '('),
                          ' REFERENCES ' || quote_ident(fc.relname) || '(',
                          ' REFERENCES ' || CASE WHEN fn.oid = p.nsp THEN 'SCHEMA' ELSE quote_ident(fn.nspname) END
                              || '.' || quote_ident(fc.relname) || '(')
                  ELSE pg_catalog.pg_get_constraintdef(k.oid) END,
                  p.re_qi, '\1SCHEMA.', 'g'), p.re_qq, '\1SCHEMA.', 'g')
    FROM pg_catalog.pg_constraint k
    JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
    JOIN pattern p ON c.relnamespace = p.nsp
    LEFT JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
    LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
    WHERE k.contype <> 'n'

    UNION ALL
    -- Indexes, including those backing constraints; partial, INCLUDE, GIN etc. are in the def.
    SELECT 'index ' || c.relname || ' ' || i.relname || ' '
           || regexp_replace(regexp_replace(
                  pg_catalog.pg_get_indexdef(x.indexrelid),
                  p.re_qi, '\1SCHEMA.', 'g'), p.re_qq, '\1SCHEMA.', 'g')
           || CASE WHEN x.indisvalid THEN '' ELSE ' INVALID' END
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
    JOIN pattern p ON c.relnamespace = p.nsp

    UNION ALL
    -- Functions and procedures: name, full argument list (with defaults), result, and the
    -- properties that change behaviour. Bodies are not compared.
    SELECT 'function ' || f.proname
           || '(' || regexp_replace(regexp_replace(
                  pg_catalog.pg_get_function_arguments(f.oid),
                  p.re_qi, '\1SCHEMA.', 'g'), p.re_qq, '\1SCHEMA.', 'g') || ')'
           || ' returns ' || coalesce(regexp_replace(regexp_replace(
                  pg_catalog.pg_get_function_result(f.oid),
                  p.re_qi, '\1SCHEMA.', 'g'), p.re_qq, '\1SCHEMA.', 'g'), '-')
           || ' kind=' || f.prokind::text
           || ' language=' || l.lanname
           || ' volatility=' || f.provolatile::text
           || ' security_definer=' || f.prosecdef::text
           || ' config=' || coalesce(array_to_string(f.proconfig, ';'), '-')
    FROM pg_catalog.pg_proc f
    JOIN pattern p ON f.pronamespace = p.nsp
    JOIN pg_catalog.pg_language l ON l.oid = f.prolang

    UNION ALL
    -- Triggers (internal ones, e.g. those implementing foreign keys, are skipped).
    SELECT 'trigger ' || c.relname || ' ' || g.tgname || ' '
           || regexp_replace(regexp_replace(
                  replace(replace(pg_catalog.pg_get_triggerdef(g.oid),
                      ' EXECUTE FUNCTION ' || quote_ident(gn.nspname) || '.' || quote_ident(gf.proname) || '(',
                      ' EXECUTE FUNCTION ' || CASE WHEN gn.oid = p.nsp THEN 'SCHEMA' ELSE quote_ident(gn.nspname) END
                          || '.' || quote_ident(gf.proname) || '('),
                      ' EXECUTE FUNCTION ' || quote_ident(gf.proname) || '(',
                      ' EXECUTE FUNCTION ' || CASE WHEN gn.oid = p.nsp THEN 'SCHEMA' ELSE quote_ident(gn.nspname) END
                          || '.' || quote_ident(gf.proname) || '('),
                  p.re_qi, '\1SCHEMA.', 'g'), p.re_qq, '\1SCHEMA.', 'g')
           || ' enabled=' || g.tgenabled::text
    FROM pg_catalog.pg_trigger g
    JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
    JOIN pattern p ON c.relnamespace = p.nsp
    JOIN pg_catalog.pg_proc gf ON gf.oid = g.tgfoid
    JOIN pg_catalog.pg_namespace gn ON gn.oid = gf.pronamespace
    WHERE NOT g.tgisinternal

    UNION ALL
    -- Stand-alone types (enums, domains, composites, ranges); row types of tables and the
    -- automatic array types are left out.
    SELECT 'type ' || ty.typname || ' typtype=' || ty.typtype::text
    FROM pg_catalog.pg_type ty
    JOIN target t ON ty.typnamespace = t.nsp
    LEFT JOIN pg_catalog.pg_class tc ON tc.oid = ty.typrelid
    WHERE (ty.typrelid = 0 OR tc.relkind = 'c')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = ty.oid)
)
SELECT fact FROM facts ORDER BY fact COLLATE "C";
