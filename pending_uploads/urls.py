"""Routes under /workspaces/<workspace_id>/ for poll-mode uploads."""

from django.urls import path

from pending_uploads import views

urlpatterns = [
    path("chat/uploads", views.upload, name="chat-uploads"),
    path("pending-uploads", views.pending_list, name="pending-uploads"),
    path("pending-uploads/<str:file_id>/content", views.content, name="pending-upload-content"),
    path("pending-uploads/<str:file_id>/ack", views.ack, name="pending-upload-ack"),
]
