// What the guide's DashScope Java SDK calls do, sent with the JDK's own java.net.http.HttpClient in
// its DEFAULT configuration: HTTP/2 preferred, which on http:// means every request offers an h2c
// upgrade (Connection: Upgrade, HTTP2-Settings; Upgrade: h2c; HTTP2-Settings) with its body.
//
// Each response prints one line "HTTP <version> <status>" on stdout. A status other than 200
// raises ApiException with the body, as the SDK's ApiException carries the server's message.
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.Stream;

final class DashScopeHttp {
    static final class ApiException extends Exception {
        private static final long serialVersionUID = 1L;

        ApiException(int status, String body) {
            super("HTTP " + status + ": " + body);
        }
    }

    private static final HttpClient CLIENT = HttpClient.newHttpClient(); // the default: Version.HTTP_2

    private final String baseUrl; // the guide's "https://dashscope-intl.aliyuncs.com/api/v1"

    DashScopeHttp(String baseUrl) {
        this.baseUrl = baseUrl;
    }

    /** One call: POST the body, return the JSON answer. */
    Map<String, Object> call(String service, Map<String, Object> body) throws ApiException, IOException, InterruptedException {
        HttpResponse<String> response = CLIENT.send(request(service, body, false), HttpResponse.BodyHandlers.ofString());
        report(response);
        if (response.statusCode() != 200) throw new ApiException(response.statusCode(), response.body());
        return Json.object(Json.parse(response.body()));
    }

    /** A streamed call (X-DashScope-SSE: enable): each event's data, parsed, to the consumer. */
    void streamCall(String service, Map<String, Object> body, Consumer<Map<String, Object>> onEvent)
            throws ApiException, IOException, InterruptedException {
        HttpResponse<Stream<String>> response = CLIENT.send(request(service, body, true), HttpResponse.BodyHandlers.ofLines());
        report(response);
        try (Stream<String> lines = response.body()) {
            if (response.statusCode() != 200) throw new ApiException(response.statusCode(), lines.collect(Collectors.joining("\n")));
            lines.filter(line -> line.startsWith("data:"))
                    .forEach(line -> onEvent.accept(Json.object(Json.parse(line.substring("data:".length())))));
        }
    }

    private HttpRequest request(String service, Map<String, Object> body, boolean sse) {
        HttpRequest.Builder builder = HttpRequest.newBuilder(URI.create(baseUrl + service))
                .header("Authorization", "Bearer " + System.getenv("DASHSCOPE_API_KEY"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(Json.write(body)));
        if (sse) builder.header("X-DashScope-SSE", "enable").header("Accept", "text/event-stream");
        return builder.build();
    }

    private static void report(HttpResponse<?> response) {
        System.out.println("HTTP " + response.version() + " " + response.statusCode());
    }
}
