"""Brute-force protection: sign-in throttled per account and per client address, registration per address,
with the counts in the database (shared by every execution environment) and 429 + Retry-After."""

import uuid
from concurrent.futures import ThreadPoolExecutor

from ragcore.throttle import throttle_key

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"


def _email() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.com"


def _login(platform, email, password, source_ip=None):
    return platform.request("POST", LOGIN, {"email": email, "password": password}, source_ip=source_ip)


def _assert_throttled(result, at_most: int):
    assert result.status == 429, result.body
    assert result.body["error"]["code"] == "rate_limited"
    assert result.body["error"]["message"]
    assert 1 <= int(result.headers["Retry-After"]) <= at_most


def _expire_windows(platform):
    platform.owner_execute("UPDATE auth_throttle SET window_start = window_start - interval '1 day'")


def test_wrong_passwords_lock_the_account_then_the_window_ends(platform):
    email = _email()
    platform.register(email=email, password="right-password")
    for _ in range(5):  # from different addresses: the account's own limit
        assert _login(platform, email, "wrong-password").status == 401
    _assert_throttled(_login(platform, email, "wrong-password"), 900)
    # While locked, even the right password is refused: otherwise guessing could go on.
    _assert_throttled(_login(platform, email, "right-password"), 900)
    other = _email()
    platform.register(email=other, password="right-password")
    assert _login(platform, other, "right-password").status == 200

    _expire_windows(platform)
    assert _login(platform, email, "right-password").status == 200
    # A successful sign-in forgets the failures: five more wrong ones before the next lock.
    for _ in range(5):
        assert _login(platform, email, "wrong-password").status == 401
    assert _login(platform, email, "wrong-password").status == 429


def test_unknown_and_known_accounts_are_throttled_alike(platform):
    known = _email()
    platform.register(email=known, password="right-password")
    seen = {}
    for email in (known, _email()):
        seen[email] = [_login(platform, email, "wrong-password") for _ in range(6)]
    known_results, unknown_results = seen.values()
    assert [r.status for r in known_results] == [r.status for r in unknown_results] == [401] * 5 + [429]
    assert [r.body for r in known_results] == [r.body for r in unknown_results]


def test_failures_from_one_address_are_throttled_across_accounts(platform, configure):
    configure(login_max_failures_per_address=4)
    attacker, email = "203.0.113.9", _email()
    platform.register(email=email, password="right-password")
    for _ in range(4):
        assert _login(platform, _email(), "guess", source_ip=attacker).status == 401
    _assert_throttled(_login(platform, _email(), "guess", source_ip=attacker), 900)
    _assert_throttled(_login(platform, email, "right-password", source_ip=attacker), 900)
    assert _login(platform, email, "right-password", source_ip="203.0.113.10").status == 200


def test_successful_sign_ins_do_not_use_up_an_address(platform, configure):
    configure(login_max_failures_per_address=2)
    office, email = "203.0.113.20", _email()
    platform.register(email=email, password="right-password")
    for _ in range(4):
        assert _login(platform, email, "right-password", source_ip=office).status == 200


def test_concurrent_guesses_get_no_more_than_the_limit(platform):
    """Counted atomically before the password is checked: parallel guesses cannot slip past the limit."""
    email = _email()
    platform.register(email=email, password="right-password")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _login(platform, email, "wrong-password"), range(12)))
    statuses = sorted(r.status for r in results)
    assert statuses == [401] * 5 + [429] * 7
    # The count lives in the database, shared by every environment of the function.
    key = throttle_key("login-account", email)
    assert platform.owner_query("SELECT attempts FROM auth_throttle WHERE key = %s", (key,)) == [(12,)]


def test_registration_is_rate_limited_per_address(platform, configure):
    configure(register_max_per_address=3)
    client, taken = "203.0.113.30", _email()
    bodies = [{"org_name": "Org", "email": e, "password": "long-enough-1"} for e in (taken, _email())]
    assert platform.request("POST", REGISTER, bodies[0], source_ip=client).status == 201
    # A taken e-mail answers 409, so probing addresses counts against the same limit.
    assert platform.request("POST", REGISTER, bodies[0], source_ip=client).status == 409
    assert platform.request("POST", REGISTER, bodies[1], source_ip=client).status == 201
    third = {"org_name": "Org", "email": _email(), "password": "long-enough-1"}
    _assert_throttled(platform.request("POST", REGISTER, third, source_ip=client), 3600)
    assert platform.request("POST", REGISTER, third, source_ip="203.0.113.31").status == 201


def test_the_application_role_cannot_touch_the_throttle_table(platform):
    privileges = platform.owner_query(
        "SELECT has_table_privilege('rag_app', 'auth_throttle', 'SELECT, INSERT, UPDATE, DELETE')"
    )
    assert privileges == [(False,)]
    keys = [r[0] for r in platform.owner_query("SELECT key FROM auth_throttle")]
    assert keys and all(len(k) == 64 and "@" not in k for k in keys)
