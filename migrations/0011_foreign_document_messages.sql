-- An ingest message names an organisation and one of its documents. A document id that exists under
-- another organisation is a forged or corrupted message: poison, for the DLQ. An id that exists nowhere is
-- most likely a document deleted while its message waited, which is acknowledged. Only the schema owner
-- sees across tenants (policy owner_reaper); this function answers that one yes/no question and returns
-- nothing of the other organisation.
CREATE FUNCTION document_held_by_another_org(p_org_id uuid, p_document_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM documents WHERE id = p_document_id AND org_id <> p_org_id)
$$;
REVOKE ALL ON FUNCTION document_held_by_another_org(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION document_held_by_another_org(uuid, uuid) TO "{{app_role}}";
