// A Java agent that does nothing, built by scripts/localstack_host.sh into
// ddb-local-loader-0.1.jar.
//
// LocalStack starts DynamoDB Local with `-javaagent:<its lib dir>/ddb-local-loader-0.1.jar`
// and, on a machine with internet access, downloads its own agent, which only patches DynamoDB
// Local to allow more than 20 global secondary indexes per table. Portcullis's tables have far
// fewer, and the host runtime installs everything from package registries only, so this empty
// agent stands in for it: the JVM needs a jar with a Premain-Class, nothing more.
package portcullis.localstack;

import java.lang.instrument.Instrumentation;

public final class DdbLocalLoader {
    private DdbLocalLoader() {}

    public static void premain(String args, Instrumentation instrumentation) {
        // Deliberately empty: see the comment at the top of this file.
    }
}
