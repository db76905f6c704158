from django.core.files.uploadedfile import SimpleUploadedFile


def test_round_trip(poll_workspace, api):
    ws = poll_workspace
    files = [
        SimpleUploadedFile("a b.txt", b"hello", content_type="text/plain; charset=utf-8"),
        SimpleUploadedFile("../x.png", b"\x89PNG....", content_type="image/png"),
    ]
    response = api.post(ws.url("chat/uploads"), {"files": files}, **ws.auth)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [f["name"] for f in body["files"]] == ["a_b.txt", "x.png"]
    listing = api.get(ws.url("pending-uploads"), **ws.auth).json()
    assert [row["name"] for row in listing] == ["a_b.txt", "x.png"]
    file_id = listing[0]["file_id"]
    content = api.get(ws.url(f"pending-uploads/{file_id}/content"), **ws.auth)
    assert content.status_code == 200
    assert content.content == b"hello"
    assert content["Content-Type"] == "text/plain"
    assert api.post(ws.url(f"pending-uploads/{file_id}/ack"), **ws.auth).json() == {"acked": True}
    assert api.get(ws.url(f"pending-uploads/{file_id}/content"), **ws.auth).status_code == 404
