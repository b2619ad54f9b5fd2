"""Every store operation of the blocking client, every type, every error
class, against a real server."""
import pytest

import varwatch
from varwatch import BatchUpdate, Choice, Constraints, Module, Tensor, VarDef

from conftest import Server


def test_sessions(client, session_name):
    info = client.create_session(session_name, ttl=60, metadata={"owner": "py"})
    assert info.id == session_name
    assert info.metadata == {"owner": "py"}
    assert info.ttl is not None and info.ttl.total_seconds() == 60
    with pytest.raises(varwatch.AlreadyExists):
        client.create_session(session_name)
    assert client.get_or_create_session(session_name).id == session_name
    assert session_name in client.list_sessions()
    client.delete_session(session_name)
    with pytest.raises(varwatch.NotFound) as e:
        client.session(session_name)
    assert session_name in str(e.value) and e.value.code == "NOT_FOUND"


def test_two_sessions_are_isolated(client, session_name):
    a, b = session_name + "a", session_name + "b"
    for s in (a, b):
        client.create_session(s)
        client.register(s, "x", "integer", 0)
    client.update(a, "x", 5)
    assert client.value(a, "x") == 5
    assert client.value(b, "x") == 0


@pytest.mark.parametrize(
    "type_, value, expected",
    [
        ("float", 1.5, 1.5),
        ("float", 2, 2.0),  # an int for a float variable
        ("integer", -(2**62), -(2**62)),
        ("integer", 3.0, 3),  # a whole float for an integer variable
        ("string", "héllo", "héllo"),
        ("boolean", True, True),
        ("choice", Choice("b"), "b"),
        ("module", Module("pkg.mod"), "pkg.mod"),
        ("embedding", [0.5] * 4096, (0.5,) * 4096),
        ("tensor", Tensor((2, 3), range(6)), Tensor((2, 3), [0, 1, 2, 3, 4, 5])),
    ],
)
def test_every_type_round_trips(client, session_name, type_, value, expected):
    client.create_session(session_name)
    constraints = Constraints(choices=["a", "b"]) if type_ == "choice" else None
    initial = {"choice": Choice("a"), "module": Module("m"), "embedding": [0.0], "tensor": Tensor((1,), [0.0])}
    client.register(session_name, "v", type_, initial.get(type_, value), constraints=constraints)
    client.update(session_name, "v", value)
    got = client.get(session_name, "v")
    assert got.type == varwatch.VarType(type_)
    assert got.value == expected
    if type_ == "choice":
        assert isinstance(got.value, Choice)


def test_numpy_embeddings_and_tensors(client, session_name):
    np = pytest.importorskip("numpy")
    client.create_session(session_name)
    emb = np.linspace(0, 1, 4096, dtype=np.float32)
    client.register(session_name, "e", "embedding", emb, dimensions=4096)
    assert list(client.value(session_name, "e")) == pytest.approx(emb.tolist())
    t = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    client.register(session_name, "t", "tensor", t)
    got = client.value(session_name, "t")
    assert got.shape == (2, 3, 4)
    assert (got.numpy() == t).all()


def test_variables(client, session_name):
    client.create_session(session_name)
    vid = client.register(session_name, "t", "float", 20.0, min=0.0, max=100.0, metadata={"unit": "C"})
    assert vid.startswith("var_")
    assert client.get(session_name, vid).name == "t"  # by id
    v = client.get(session_name, "t")
    assert (v.value, v.version, v.constraints.max, v.metadata) == (20.0, 0, 100.0, {"unit": "C"})
    assert client.update(session_name, "t", 21.0, source="py", metadata={"why": "test"}) == 1
    v = client.get(session_name, "t")
    assert (v.version, v.source, v.change_metadata) == (1, "py", {"why": "test"})
    client.register(session_name, "u", "integer", 0)
    many = client.get_many(session_name, ["t", "u", "nope"])
    assert list(many.found) == ["t", "u"] and many.missing == ["nope"]
    assert all(x.revision <= many.revision for x in many.found.values())
    assert [x.name for x in client.list_variables(session_name, "t*")] == ["t"]
    client.delete_variable(session_name, "u")
    with pytest.raises(varwatch.NotFound):
        client.get(session_name, "u")


def test_errors(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "t", "float", 20.0, max=100.0)
    with pytest.raises(varwatch.InvalidArgument) as e:
        client.update(session_name, "t", 500.0)
    assert "above maximum 100" in str(e.value)
    with pytest.raises(varwatch.InvalidArgument):
        client.register(session_name, "var_3", "integer", 0)  # a name of the id form
    with pytest.raises(varwatch.AlreadyExists):
        client.register(session_name, "t", "float", 1.0)
    client.update(session_name, "t", 1.0)
    with pytest.raises(varwatch.VersionConflict) as e:
        client.update(session_name, "t", 2.0, expected_version=0)
    assert (e.value.expected, e.value.current) == (0, 1)
    with pytest.raises(varwatch.NotFound):
        client.update(session_name, "nope", 1.0)
    with pytest.raises(TypeError):
        client.update(session_name, "t", object())


def test_resource_exhausted_unauthenticated_and_unavailable(session_name):
    small = Server("--max-value-bytes", "64", token="s3cret")
    try:
        with varwatch.Client(small.address, token="s3cret") as c:
            c.create_session(session_name)
            c.register(session_name, "s", "string", "")
            with pytest.raises(varwatch.ResourceExhausted):
                c.update(session_name, "s", "x" * 1000)
        with varwatch.Client(small.address) as anonymous:
            with pytest.raises(varwatch.Unauthenticated):
                anonymous.list_sessions()
        with varwatch.Client(small.address, token="wrong") as wrong:
            with pytest.raises(varwatch.Unauthenticated):
                wrong.list_sessions()
    finally:
        small.stop()
    with varwatch.Client(small.address, timeout=5) as gone:
        with pytest.raises(varwatch.Unavailable):
            gone.list_sessions()


def test_batches(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "a", "integer", 0)
    client.register(session_name, "b", "integer", 0)
    rev = client.session(session_name).revision
    assert client.update_atomic(session_name, [("a", 1), ("b", 2)]) == [1, 1]
    assert client.session(session_name).revision == rev + 1  # one revision
    with pytest.raises(varwatch.VarwatchError) as e:
        client.update_atomic(session_name, [("a", 5), ("nope", 1), BatchUpdate("b", 9, expected_version=0)])
    assert "nope" in str(e.value) and "expected version 0" in str(e.value)
    assert client.value(session_name, "a") == 1  # nothing applied
    r = client.update_best_effort(session_name, [BatchUpdate("a", 7, 1), BatchUpdate("a", 8, 1)])
    assert r[0] == 2
    assert isinstance(r[1], varwatch.VersionConflict) and r[1].current == 2


def test_export_and_import(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "t", "float", 20.5, min=0.0, metadata={"unit": "C"})
    client.register(session_name, "c", "choice", Choice("a"), choices=["a", "b"])
    defs = client.export(session_name)
    assert [d.name for d in defs] == ["t", "c"]
    other = session_name + "-copy"
    client.create_session(other)
    ids = client.import_variables(other, defs)
    assert len(ids) == 2
    t = client.get(other, "t")
    assert (t.value, t.constraints.min, t.metadata) == (20.5, 0.0, {"unit": "C"})
    bad = defs + [VarDef("t", varwatch.VarType.FLOAT, 1.0), VarDef("u", "integer", "x")]
    with pytest.raises(varwatch.VarwatchError) as e:
        client.import_variables(other, bad)
    assert "`t`" in str(e.value) and "`u`" in str(e.value)
    assert len(client.list_variables(other)) == 2
