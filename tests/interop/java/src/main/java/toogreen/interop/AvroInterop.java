package toogreen.interop;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SchemaCompatibility.SchemaPairCompatibility;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.util.RandomData;

/**
 * The project's wire format checked against Apache Avro's reference implementation. Records travel as Avro
 * single-object encoding in hex, one per line; their values as Avro's JSON encoding, one per line.
 *
 * <pre>
 * random SCHEMA_DIR COUNT SEED OUT      COUNT random records of every SCHEMA_DIR/*.avsc: schema, JSON, single-object hex
 * encode SCHEMA IN_JSONL OUT_HEX        BinaryMessageEncoder over each JSON-encoded record
 * decode SCHEMA IN_HEX OUT_JSONL [WRITER_SCHEMA...]
 *                                       BinaryMessageDecoder with SCHEMA as the reader (it also knows each WRITER_SCHEMA);
 *                                       a record it cannot decode gives {"error": "..."}
 * compat BASELINE_DIR SCHEMA_DIR        every schema must read what its baseline wrote (SchemaCompatibility, BACKWARD)
 * fingerprint SCHEMA                    the 8 bytes BinaryMessageEncoder puts after C3 01, in hex
 * canonical SCHEMA                      the schema's Parsing Canonical Form (what the fingerprint is taken of)
 * </pre>
 */
public final class AvroInterop {
    private static final HexFormat HEX = HexFormat.of();

    private AvroInterop() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            usage();
        }
        switch (args[0]) {
            case "random" -> random(Path.of(args[1]), Integer.parseInt(args[2]), Long.parseLong(args[3]), Path.of(args[4]));
            case "encode" -> encode(parse(Path.of(args[1])), Path.of(args[2]), Path.of(args[3]));
            case "decode" -> {
                List<Schema> writers = new ArrayList<>();
                for (int i = 4; i < args.length; i++) {
                    writers.add(parse(Path.of(args[i])));
                }
                decode(parse(Path.of(args[1])), Path.of(args[2]), Path.of(args[3]), writers);
            }
            case "compat" -> System.exit(compat(Path.of(args[1]), Path.of(args[2])));
            case "fingerprint" -> System.out.println(HEX.formatHex(fingerprint(parse(Path.of(args[1])))));
            case "canonical" -> System.out.println(SchemaNormalization.toParsingForm(parse(Path.of(args[1]))));
            default -> usage();
        }
    }

    private static void usage() {
        System.err.println("usage: random|encode|decode|compat|fingerprint|canonical ... (see the class comment)");
        System.exit(2);
    }

    static Schema parse(Path file) throws IOException {
        return new Schema.Parser().parse(file.toFile());
    }

    static byte[] fingerprint(Schema schema) throws Exception {
        return SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema);
    }

    static String toJson(Schema schema, Object datum) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        JsonEncoder encoder = EncoderFactory.get().jsonEncoder(schema, out);
        new GenericDatumWriter<Object>(schema).write(datum, encoder);
        encoder.flush();
        return out.toString(StandardCharsets.UTF_8);
    }

    static Object fromJson(Schema schema, String json) throws IOException {
        return new GenericDatumReader<Object>(schema).read(null, DecoderFactory.get().jsonDecoder(schema, json));
    }

    static String singleObjectHex(BinaryMessageEncoder<Object> encoder, Object datum) throws IOException {
        ByteBuffer buffer = encoder.encode(datum);
        byte[] bytes = new byte[buffer.remaining()];
        buffer.get(bytes);
        return HEX.formatHex(bytes);
    }

    static List<Path> schemaFiles(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> p.toString().endsWith(".avsc")).sorted().toList();
        }
    }

    static void random(Path schemaDir, int count, long seed, Path out) throws Exception {
        try (PrintWriter writer = new PrintWriter(Files.newBufferedWriter(out, StandardCharsets.UTF_8))) {
            for (Path file : schemaFiles(schemaDir)) {
                Schema schema = parse(file);
                BinaryMessageEncoder<Object> encoder = new BinaryMessageEncoder<>(GenericData.get(), schema);
                for (Object datum : new RandomData(schema, count, seed)) {
                    writer.println("{\"schema\": " + quote(file.getFileName().toString())
                            + ", \"json\": " + quote(toJson(schema, datum))
                            + ", \"hex\": " + quote(singleObjectHex(encoder, datum)) + "}");
                }
            }
        }
    }

    static void encode(Schema schema, Path in, Path out) throws Exception {
        BinaryMessageEncoder<Object> encoder = new BinaryMessageEncoder<>(GenericData.get(), schema);
        List<String> lines = new ArrayList<>();
        for (String json : Files.readAllLines(in, StandardCharsets.UTF_8)) {
            if (!json.isBlank()) {
                lines.add(singleObjectHex(encoder, fromJson(schema, json)));
            }
        }
        Files.write(out, lines, StandardCharsets.UTF_8);
    }

    static void decode(Schema reader, Path in, Path out, List<Schema> writers) throws Exception {
        BinaryMessageDecoder<Object> decoder = new BinaryMessageDecoder<>(GenericData.get(), reader);
        for (Schema writer : writers) {
            decoder.addSchema(writer);
        }
        List<String> lines = new ArrayList<>();
        for (String hex : Files.readAllLines(in, StandardCharsets.UTF_8)) {
            if (hex.isBlank()) {
                continue;
            }
            try {
                lines.add(toJson(reader, decoder.decode(HEX.parseHex(hex.strip()))));
            } catch (Exception e) {
                lines.add("{\"error\": " + quote(e.getClass().getSimpleName() + ": " + e.getMessage()) + "}");
            }
        }
        Files.write(out, lines, StandardCharsets.UTF_8);
    }

    static int compat(Path baselineDir, Path schemaDir) throws Exception {
        int broken = 0;
        int checked = 0;
        for (Path baselineFile : schemaFiles(baselineDir)) {
            Path current = schemaDir.resolve(baselineFile.getFileName());
            if (!Files.exists(current)) {
                System.out.println(baselineFile.getFileName() + ": INCOMPATIBLE: the schema is gone from " + schemaDir);
                broken++;
                continue;
            }
            // BACKWARD: the new schema, as reader, must resolve every record the baseline, as writer, wrote
            SchemaPairCompatibility result =
                    SchemaCompatibility.checkReaderWriterCompatibility(parse(current), parse(baselineFile));
            checked++;
            if (result.getType() != SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE) {
                broken++;
                for (SchemaCompatibility.Incompatibility inc : result.getResult().getIncompatibilities()) {
                    System.out.println(baselineFile.getFileName() + ": INCOMPATIBLE: " + inc.getType() + " at "
                            + inc.getLocation() + ": " + inc.getMessage());
                }
            } else {
                System.out.println(baselineFile.getFileName() + ": BACKWARD compatible with its baseline");
            }
        }
        System.out.println(checked + " schemas checked, " + broken + " incompatible");
        return broken == 0 ? 0 : 1;
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
