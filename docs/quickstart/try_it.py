# Save a file through the model, as a view or a form would.
from django.core.files.base import ContentFile
from uploads.models import Document

doc = Document.objects.create(file=ContentFile(b"Hello, S3!", name="hello.txt"))
print(doc.file.name, doc.file.status, doc.file.url)
