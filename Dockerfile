FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir .
# schemas/ and sinks/schema.sql are read from the source tree
ENV PYTHONPATH=/app
EXPOSE 8000
CMD ["toogreen", "--help"]
