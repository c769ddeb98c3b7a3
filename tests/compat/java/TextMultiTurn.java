// The guide's Java example "Getting started / DashScope / Java", its request bodies sent with the
// JDK's HttpClient (DashScopeHttp) in place of the DashScope Java SDK, which is not reachable here.
// Changes are marked "changed:": the base URL comes from MULTITURN_BASE_URL, max_tokens keeps the
// embedded model's answers short, one Scanner reads stdin (a new Scanner per turn, as the guide
// has, loses piped input buffered by the previous one), the input is echoed, and the conversation
// is printed as JSON at the end, for the test.
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Scanner;

public class TextMultiTurn {
    public static Map<String, Object> createGenerationParam(List<Map<String, Object>> messages) {
        // GenerationParam.builder().model("qwen-plus").messages(messages).resultFormat(MESSAGE): the SDK's body
        Map<String, Object> parameters = new LinkedHashMap<>();
        parameters.put("result_format", "message");
        parameters.put("max_tokens", Long.valueOf(System.getenv().getOrDefault("MAX_TOKENS", "32"))); // changed: the guide sets none
        Map<String, Object> input = new LinkedHashMap<>();
        input.put("messages", messages);
        Map<String, Object> param = new LinkedHashMap<>();
        param.put("model", "qwen-plus");
        param.put("input", input);
        param.put("parameters", parameters);
        return param;
    }

    public static Map<String, Object> callGenerationWithMessages(Map<String, Object> param) throws Exception {
        // changed: was new Generation(Protocol.HTTP.getValue(), "https://dashscope-intl.aliyuncs.com/api/v1")
        DashScopeHttp gen = new DashScopeHttp(System.getenv("MULTITURN_BASE_URL"));
        return gen.call("/services/aigc/text-generation/generation", param);
    }

    public static void main(String[] args) {
        try {
            List<Map<String, Object>> messages = new ArrayList<>();
            messages.add(createMessage("system", "You are a helpful assistant."));
            Scanner scanner = new Scanner(System.in); // changed: was created in the loop
            for (int i = 0; i < 3; i++) {
                System.out.print("Please enter: ");
                String userInput = scanner.nextLine();
                System.out.println(userInput); // changed: echo the piped input
                if ("exit".equalsIgnoreCase(userInput)) {
                    break;
                }
                messages.add(createMessage("user", userInput));
                Map<String, Object> param = createGenerationParam(messages);
                Map<String, Object> result = callGenerationWithMessages(param);
                Map<String, Object> message = firstMessage(result);
                System.out.println("Model output: " + message.get("content"));
                messages.add(message);
            }
            System.out.println("MESSAGES " + Json.write(messages)); // changed: for the test
        } catch (Exception e) {
            e.printStackTrace();
        }
        System.exit(0);
    }

    private static Map<String, Object> createMessage(String role, String content) {
        Map<String, Object> message = new LinkedHashMap<>();
        message.put("role", role);
        message.put("content", content);
        return message;
    }

    // result.getOutput().getChoices().get(0).getMessage()
    private static Map<String, Object> firstMessage(Map<String, Object> result) {
        Map<String, Object> output = Json.object(result.get("output"));
        return Json.object(Json.object(Json.array(output.get("choices")).get(0)).get("message"));
    }
}
