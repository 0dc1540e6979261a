# Create the bucket named in STORAGES["s3"] (once).
from django.core.files.storage import storages

s3 = storages["s3"]
region = s3.connection.meta.client.meta.region_name
if region == "us-east-1":
    s3.bucket.create()
else:
    s3.bucket.create(CreateBucketConfiguration={"LocationConstraint": region})
print("Created the bucket", s3.bucket_name)
