package toogreen.interop;

import java.io.File;
import java.nio.ByteBuffer;
import java.util.Properties;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A node registered and reporting telemetry from Java with nothing but Apache Avro and kafka-clients (on their
 * defaults): the producer guide's Java example, run by the integration tests.
 *
 * <pre>java -cp avro-interop.jar:lib/* toogreen.interop.OutsideNode BOOTSTRAP SCHEMA_DIR NODE_ID ZONE SECONDS</pre>
 */
public final class OutsideNode {
    private OutsideNode() {}

    /** The value bytes of a record: C3 01, the schema's CRC-64-AVRO fingerprint (little endian), the body. */
    static byte[] singleObject(BinaryMessageEncoder<GenericRecord> encoder, GenericRecord record) throws Exception {
        ByteBuffer buffer = encoder.encode(record);
        byte[] bytes = new byte[buffer.remaining()];
        buffer.get(bytes);
        return bytes;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        File schemas = new File(args[1]);
        String nodeId = args[2];
        String zone = args[3];
        long seconds = Long.parseLong(args[4]);

        Schema registrySchema = new Schema.Parser().parse(new File(schemas, "node_registry.avsc"));
        Schema telemetrySchema = new Schema.Parser().parse(new File(schemas, "node_telemetry.avsc"));
        BinaryMessageEncoder<GenericRecord> registry = new BinaryMessageEncoder<>(GenericData.get(), registrySchema);
        BinaryMessageEncoder<GenericRecord> telemetry = new BinaryMessageEncoder<>(GenericData.get(), telemetrySchema);

        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(config)) {
            GenericRecord node = new GenericRecordBuilder(registrySchema)  // fields with a default may be left out
                    .set("node_id", nodeId).set("ts_ms", System.currentTimeMillis())
                    .set("provider", "Outside AG").set("node_type", new GenericData.EnumSymbol(
                            registrySchema.getField("node_type").schema(), "datacenter"))
                    .set("gpu_model", "A100").set("vram_mb", 40_960L).set("zone", zone)
                    .set("lat", 47.37).set("lng", 8.54).set("pue", 1.15).set("max_power_w", 400.0)
                    .build();
            producer.send(new ProducerRecord<>("node.registry", nodeId, singleObject(registry, node))).get();

            double energyJ = 0.0;
            for (long i = 0; i <= seconds; i++) {
                energyJ += 60.0;
                String health = i < seconds ? "healthy" : "unhealthy";  // the last sample: going away
                GenericRecord sample = new GenericRecordBuilder(telemetrySchema)
                        .set("node_id", nodeId).set("ts_ms", System.currentTimeMillis())
                        .set("sm_util_pct", 1.0).set("mem_used_mb", 500L).set("mem_total_mb", 40_960L)
                        .set("power_w", 60.0).set("energy_j", energyJ).set("source", "outside-java")
                        .set("health", new GenericData.EnumSymbol(telemetrySchema.getField("health").schema(), health))
                        .build();
                producer.send(new ProducerRecord<>("node.telemetry", nodeId, singleObject(telemetry, sample))).get();
                if (i < seconds) {
                    Thread.sleep(1000);
                }
            }
        }
        System.out.println("{\"event\": \"offline\", \"node_id\": \"" + nodeId + "\"}");
    }
}
